/**
 * Domain names as the egress filter compares them: lower case, without the trailing dot of a fully qualified name.
 * Names travel as given: an internationalised name must already be in its ASCII (punycode `xn--`) form.
 */

/** Letters, digits, `_` and inner `-`, 1 to 63 of them (RFC 1035 labels, plus the `_` that service names use). */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const MAX_NAME_LENGTH = 253;

/**
 * The canonical form of a host name, or undefined when `text` is not one: an empty label, a label over 63 characters,
 * a name over 253, any character outside the label alphabet, or a last label of digits only (a resolver would read
 * `10.1` or `2130706433` as an IPv4 address).
 */
export function normalizeDomainName(text: string): string | undefined {
  if (text.length > MAX_NAME_LENGTH + 1) return undefined;
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return undefined;
  const labels = name.split('.');
  if (!labels.every((label) => LABEL.test(label))) return undefined;
  // Lower-cased only once known to be ASCII: toLowerCase maps some non-ASCII letters (U+212A KELVIN SIGN) to ASCII.
  return /^[0-9]+$/.test(labels[labels.length - 1] ?? '') ? undefined : name.toLowerCase();
}
