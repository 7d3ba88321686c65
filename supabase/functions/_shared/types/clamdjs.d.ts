// clamdjs ships no types; these cover the calls the project makes.
declare module "clamdjs" {
  export interface Scanner {
    scanBuffer(buffer: Uint8Array, timeout?: number, chunkSize?: number): Promise<string>;
    scanStream(stream: unknown, timeout?: number): Promise<string>;
    scanFile(path: string, timeout?: number, chunkSize?: number): Promise<string>;
  }
  export function createScanner(host: string, port: number): Scanner;
  export function ping(host: string, port: number, timeout?: number): Promise<boolean>;
  export function version(host: string, port: number, timeout?: number): Promise<string>;
  export function isCleanReply(reply: string): boolean;
  const clamd: {
    createScanner: typeof createScanner;
    ping: typeof ping;
    version: typeof version;
    isCleanReply: typeof isCleanReply;
  };
  export default clamd;
}
