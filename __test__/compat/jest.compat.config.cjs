// jest over the compat suite, with several workers (each test file in its own worker).
module.exports = {
  rootDir: '../..',
  testMatch: ['<rootDir>/__test__/compat/jest-*.test.cjs'],
  testEnvironment: 'node',
}
