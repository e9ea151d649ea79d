// A JSON Schema validator (ajv, 2020-12) that knows the vendor keywords of schemas.ts, for tests
// only (Node: src/api/openapi.test.ts, e2e/schemas.test.ts). Never imported by the Worker or the
// SDK: ajv compiles validators with new Function, which the Workers runtime refuses, and it would
// weigh more than the SDK.

// The named export: the default one is a CommonJS interop hazard under NodeNext resolution (e2e/).
import { Ajv2020 } from "ajv/dist/2020.js";
import { MAX_EMOJI_BYTES, SHORTCODE_PATTERN } from "./limits.js";

export const schemaValidator = (): Ajv2020 => {
  // strictRequired is off: "at least one of" is written as anyOf of required lists, which it would flag.
  const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true, allowUnionTypes: true });
  // The vendor keywords of src/protocol/schemas.ts, with the meaning written there.
  ajv.addKeyword({
    keyword: "x-maxUtf16Length",
    type: "string",
    schemaType: "number",
    validate: (max: number, value: string) => value.length <= max,
  });
  const utf8 = new TextEncoder();
  ajv.addKeyword({
    keyword: "x-maxJsonBytes",
    type: "object",
    schemaType: "number",
    validate: (max: number, value: unknown) => {
      const json = JSON.stringify(value);
      return utf8.encode(json).length <= max && !json.includes("\\u0000");
    },
  });
  ajv.addKeyword({
    keyword: "x-httpUrl",
    type: "string",
    schemaType: "boolean",
    validate: (_: boolean, value: string) => {
      try {
        const { protocol } = new URL(value);
        return protocol === "http:" || protocol === "https:";
      } catch {
        return false;
      }
    },
  });
  const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
  ajv.addKeyword({
    keyword: "x-emoji",
    type: "string",
    schemaType: "boolean",
    validate: (_: boolean, value: string) => {
      if (value.length === 0 || utf8.encode(value).length > MAX_EMOJI_BYTES) return false;
      if (SHORTCODE_PATTERN.test(value)) return true;
      return [...graphemes.segment(value)].length === 1 && value.isWellFormed() && /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u.test(value);
    },
  });
  ajv.addFormat("date-time", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  return ajv;
};
