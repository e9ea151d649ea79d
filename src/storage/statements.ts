// Names of the room's prepared statements that fault injection (tests, the chaos checker) must
// recognise on the wire. A prepared statement's SQL text crosses the wire once per connection (Parse);
// every execution names it (Bind), so a fault that must hit the commit matches on the name.
export const COMMIT_STATEMENT = "chat_commit_v6";
