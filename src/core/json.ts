/** JSON.parse for input that may not be JSON: undefined instead of a SyntaxError (zod then says what is wrong). */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
