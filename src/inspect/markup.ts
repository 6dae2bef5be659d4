/**
 * Markup read in one pass with htmlparser2's Tokenizer (entities decoded by
 * it), never its Parser: the Parser keeps open elements in an array it
 * grows at the front, which makes deeply nested input cost the square of
 * its depth. Here open elements cost nothing, so HTML or XML built to be deep
 * or wide costs its length. Used for HTML parts (html-text.ts) and the XML
 * of office documents (documents.ts).
 */
import { Tokenizer, type TokenizerCallbacks } from 'htmlparser2';

export interface MarkupHandler {
  open(name: string, attrs: ReadonlyMap<string, string>): void;
  close(name: string): void;
  text(text: string): void;
}

/** Streams `markup` to `h`: element names lowercase; attribute values decoded; text decoded, possibly in several pieces. */
export function readMarkup(markup: string, xmlMode: boolean, h: MarkupHandler): void {
  let tag = '';
  let attrs = new Map<string, string>();
  let attrName = '';
  let attrValue = '';
  let inOpenTag = false;
  const lower = (s: string) => (xmlMode ? s : s.toLowerCase());
  const finishOpen = () => {
    if (!inOpenTag) return;
    inOpenTag = false;
    h.open(tag, attrs);
  };
  const callbacks: TokenizerCallbacks = {
    onopentagname(start, end) {
      tag = lower(markup.slice(start, end));
      attrs = new Map();
      inOpenTag = true;
    },
    onattribname(start, end) {
      attrName = lower(markup.slice(start, end));
      attrValue = '';
    },
    onattribdata(start, end) {
      attrValue += markup.slice(start, end);
    },
    onattribentity(codepoint) {
      attrValue += String.fromCodePoint(codepoint);
    },
    onattribend() {
      if (!attrs.has(attrName)) attrs.set(attrName, attrValue);
    },
    onopentagend() {
      finishOpen();
    },
    onselfclosingtag() {
      finishOpen();
      h.close(tag);
    },
    onclosetag(start, end) {
      h.close(lower(markup.slice(start, end)));
    },
    ontext(start, end) {
      h.text(markup.slice(start, end));
    },
    ontextentity(codepoint) {
      h.text(String.fromCodePoint(codepoint));
    },
    oncdata(start, end) {
      if (xmlMode) h.text(markup.slice(start, end));
    },
    oncomment() {},
    ondeclaration() {},
    onprocessinginstruction() {},
    onend() {},
  };
  const tokenizer = new Tokenizer({ xmlMode, decodeEntities: true }, callbacks);
  tokenizer.write(markup);
  tokenizer.end();
}
