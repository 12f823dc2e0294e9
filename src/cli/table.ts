/** Prints rows as left-aligned columns two spaces apart; the first row is the header. */
export function printTable(table: readonly (readonly string[])[]): void {
  const widths = table[0]!.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
  const line = (row: readonly string[]): string => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
  process.stdout.write(table.map((row) => `${line(row).trimEnd()}\n`).join(''));
}
