// The prompt counter counts what the server counts: Unicode scalar values
// (Rust's `str::chars().count()`), not UTF-16 code units. An emoji is one,
// an Urdu letter is one, a line break is one.

export function countChars(s) {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
}
