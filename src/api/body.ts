// Request bodies with a size cap that holds while the body is still arriving. A declared
// Content-Length over the cap is refused before a byte is read; a chunked body (no length) is
// read chunk by chunk and refused, and the rest cancelled unread, as soon as it passes the cap.
// Reading first and measuring after would let one request pin tens of megabytes of an isolate's
// 128 MB before it is refused.

import { ChatError, ErrorCode } from "../protocol/errors.js";

const tooLarge = (maxBytes: number): ChatError =>
  new ChatError(ErrorCode.TooLarge, `unable to read the body; it is over ${maxBytes} bytes`);

/** The body's bytes, at most `maxBytes` of them, or `too_large`. */
export const readBodyCapped = async (request: Request, maxBytes: number): Promise<Uint8Array> => {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      // Stop pulling: the sender's remaining bytes are never buffered here.
      reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
};
