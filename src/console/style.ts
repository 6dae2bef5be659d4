/** The console's one stylesheet, served from /static/console.css (no third-party asset, nothing inline: the CSP allows 'self' only). */
export const STYLESHEET = `
:root { color-scheme: light; --fg: #1b1f23; --muted: #57606a; --line: #d0d7de; --accent: #0b5cad; --ok: #116329; --bad: #a40e26; --bg2: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, "Noto Sans JP", "Hiragino Sans", "Yu Gothic", sans-serif; color: var(--fg); }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5em; }
.skip:focus { left: .5em; z-index: 10; }
header { display: flex; flex-wrap: wrap; gap: 1em; align-items: center; justify-content: space-between; padding: .6em 1.2em; border-bottom: 1px solid var(--line); background: var(--bg2); }
header .who { color: var(--muted); }
.layout { display: flex; min-height: calc(100vh - 3em); }
nav.sections { width: 13em; flex: none; border-right: 1px solid var(--line); padding: 1em 0; }
nav.sections ul { list-style: none; margin: 0; padding: 0; }
nav.sections a { display: block; padding: .45em 1.2em; color: var(--fg); text-decoration: none; }
nav.sections a[aria-current="page"] { font-weight: 600; border-left: 3px solid var(--accent); background: var(--bg2); }
a:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible, select:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
main { flex: 1; padding: 1em 2em 3em; max-width: 80em; overflow-x: auto; }
h1 { font-size: 1.5em; margin: .2em 0 .8em; }
h2 { font-size: 1.15em; margin: 1.5em 0 .5em; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg2); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; }
.ok { color: var(--ok); }
.bad { color: var(--bad); }
.notice { padding: .6em 1em; border: 1px solid var(--line); border-left-width: 4px; margin: 0 0 1em; }
.notice.ok { border-left-color: var(--ok); }
.notice.bad { border-left-color: var(--bad); }
form.inline { display: inline; }
form.stack { display: grid; gap: .4em; max-width: 40em; margin: .5em 0 1.5em; }
label { font-weight: 600; }
input[type=text], textarea, select { font: inherit; padding: .35em .5em; border: 1px solid var(--line); border-radius: 4px; width: 100%; }
textarea { min-height: 10em; font-family: ui-monospace, monospace; font-size: 13px; }
button { font: inherit; padding: .35em .9em; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1em; }
dt { font-weight: 600; }
dd { margin: 0; }
.langs a { margin-left: .6em; }
`;
