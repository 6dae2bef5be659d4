/**
 * HTML as a reader sees it, for DLP: html-to-text (htmlparser2) with tags
 * removed, entities decoded, no line wrapping, link targets and image names
 * left out; inline elements stay side by side, block elements end a line.
 */
import { compile } from 'html-to-text';

/** HTML as a reader sees it: tags removed, entities decoded, inline elements adjacent, no wrapping, no link targets or image names. */
export const htmlText: (html: string) => string = compile({
  wordwrap: false,
  preserveNewlines: false,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
    { selector: 'table', format: 'dataTable', options: { uppercaseHeaderCells: false } },
  ],
});
