// The AI SDK's types import 'json-schema' without installing its types (@types/json-schema):
// the two names they use, loosely, so strict checking of the tests that import `ai` passes.
declare module 'json-schema' {
  export type JSONSchema7 = { [key: string]: unknown }
  export type JSONSchema7Definition = JSONSchema7 | boolean
}
