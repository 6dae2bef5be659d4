/**
 * HTML as a reader sees it, for DLP: tags removed, entities decoded (`&#52;`
 * is `4`), runs of white space collapsed to one space as a browser shows
 * them; inline elements stay side by side (`<span>4111</span><span>1111</span>`
 * is `41111111`), block elements end a line, table cells are separated by a
 * tab (two cells never make one number). Scripts, styles and templates are
 * not shown and not read; link targets and image names are not text. One
 * pass with htmlparser2's tokenizer (markup.ts): linear in the input,
 * whatever its nesting.
 */
import { readMarkup } from './markup';

const BLOCK = new Set([
  'address',
  'article',
  'aside',
  'blockquote',
  'body',
  'br',
  'caption',
  'center',
  'dd',
  'details',
  'dialog',
  'div',
  'dl',
  'dt',
  'fieldset',
  'figcaption',
  'figure',
  'footer',
  'form',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hr',
  'html',
  'li',
  'main',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'summary',
  'table',
  'tbody',
  'tfoot',
  'thead',
  'title',
  'tr',
  'ul',
]);
const CELL = new Set(['td', 'th']);
const HIDDEN = new Set(['script', 'style', 'template']);

export function htmlText(html: string): string {
  const out: string[] = [];
  let hiddenBy: string | undefined;
  /** What ends the text so far: nothing yet or a line, a cell, or text (with a space owed before more text). */
  let last = 'line' as 'line' | 'cell' | 'text';
  let space = false;
  const breakWith = (kind: 'line' | 'cell') => {
    space = false;
    if (last === 'line' || (kind === 'cell' && last === 'cell')) return;
    out.push(kind === 'line' ? '\n' : '\t');
    last = kind;
  };
  readMarkup(html, false, {
    open(name) {
      if (hiddenBy) return;
      if (HIDDEN.has(name)) hiddenBy = name;
      else if (BLOCK.has(name)) breakWith('line');
    },
    close(name) {
      if (hiddenBy) {
        if (name === hiddenBy) hiddenBy = undefined;
        return;
      }
      if (BLOCK.has(name)) breakWith('line');
      else if (CELL.has(name)) breakWith('cell');
    },
    text(data) {
      if (hiddenBy) return;
      const collapsed = data.replace(/[ \t\n\r\f\u00a0]+/g, ' ');
      const core = collapsed.trim();
      if (collapsed.startsWith(' ') && last === 'text') space = true;
      if (core === '') return;
      if (space && last === 'text') out.push(' ');
      out.push(core);
      last = 'text';
      space = collapsed.endsWith(' ');
    },
  });
  return out.join('').replace(/\n$/, '');
}
