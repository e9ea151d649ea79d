// Names of the room's prepared statements. A prepared statement's SQL text crosses the wire once
// per connection (Parse); every execution names it (Bind). A name is its prefix plus a hash of its
// text, so a changed statement can never be executed under a name prepared for the old text (the
// driver refuses a name reused with another text), and fault injection (tests, the chaos checker)
// that must hit the commit matches the prefix, which every execution carries.
export const COMMIT_STATEMENT = "chat_commit_";

/** FNV-1a, 32 bits, hex: a short, stable name suffix for a statement's text. */
const fnv1a = (text: string): string => {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
};

const names = new Map<string, string>();

/** The statement name for `text`: `${prefix}${hash}` (computed once per text). */
export const statementName = (prefix: string, text: string): string => {
  let name = names.get(text);
  if (!name) {
    name = `${prefix}${fnv1a(text)}`;
    names.set(text, name);
  }
  return name;
};
