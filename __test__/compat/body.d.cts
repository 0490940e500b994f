/** Runs the compat suite; resolves to the names of what it checked. */
export declare function run(redisUrl: string | undefined): Promise<string[]>
