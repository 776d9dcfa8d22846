// The page frame: navigation, who is signed in, sign-out. No script anywhere: every form
// is a plain POST; pages of running requests refresh themselves with a meta refresh.
import { type Html, html } from './html.js';
import type { Session } from './sessions.js';

/** A navigation entry; `when` hides it from roles that could not use it (the database still decides). */
export interface NavEntry {
  path: string;
  label: string;
  when?: (s: Session) => boolean;
}

export interface PageOptions {
  title: string;
  session?: Session;
  nav?: readonly NavEntry[];
  /** Reload this URL after so many seconds (live progress without JavaScript). */
  refresh?: { seconds: number; url: string };
  current?: string;
}

export function page(opts: PageOptions, body: Html): Html {
  const s = opts.session;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        ${opts.refresh ? html`<meta http-equiv="refresh" content="${opts.refresh.seconds}; url=${opts.refresh.url}" />` : ''}
        <title>${opts.title} · Lethe</title>
        <link rel="stylesheet" href="/admin.css" />
      </head>
      <body>
        <header>
          <a class="brand" href="/requests">Lethe</a>
          ${
            s
              ? html`<nav>
                    ${(opts.nav ?? [])
                      .filter((n) => !n.when || n.when(s))
                      .map(
                        (n) =>
                          html`<a href="${n.path}" ${opts.current === n.path ? html` aria-current="page"` : ''}
                            >${n.label}</a
                          >`,
                      )}
                  </nav>
                  <form class="signout" method="post" action="/sign-out">
                    ${csrfField(s)}<span>${s.privileges.role} (${roleLabel(s)})</span> <button>Sign out</button>
                  </form>`
              : ''
          }
        </header>
        <main>
          <h1>${opts.title}</h1>
          ${body}
        </main>
      </body>
    </html>`;
}

export function csrfField(s: Session): Html {
  return html`<input type="hidden" name="_csrf" value="${s.csrfToken}" />`;
}

function roleLabel(s: Session): string {
  const p = s.privileges;
  return p.admin ? 'admin' : [p.operator && 'operator', p.auditor && 'auditor'].filter(Boolean).join(', ');
}

export function notice(kind: 'error' | 'ok' | 'info', body: Html | string): Html {
  return html`<p class="notice ${kind}" role="${kind === 'error' ? 'alert' : 'status'}">${body}</p>`;
}

/** A table's header row; a column written '#Rows' is numeric (right-aligned). */
export function tableHead(...columns: string[]): Html {
  return html`<thead>
    <tr>
      ${columns.map((c) => (c.startsWith('#') ? html`<th class="num">${c.slice(1)}</th>` : html`<th>${c}</th>`))}
    </tr>
  </thead>`;
}

export function progressBar(fraction: number): Html {
  const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  return html`<progress max="100" value="${pct}">${pct}%</progress> ${pct}%`;
}

export const STYLESHEET = `
:root { --fg:#1d232b; --muted:#5b6570; --line:#d9dee3; --accent:#2557a7; --bad:#a4262c; --ok:#1e7b34; --warn:#8a5a00; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:#f6f7f9; }
header { display:flex; align-items:center; gap:1.5rem; padding:.6rem 1.5rem; background:#fff; border-bottom:1px solid var(--line); flex-wrap:wrap; }
.brand { font-weight:700; font-size:1.1rem; color:var(--fg); text-decoration:none; }
nav { display:flex; gap:1rem; flex:1; flex-wrap:wrap; }
nav a { color:var(--accent); text-decoration:none; padding:.2rem 0; }
nav a[aria-current] { border-bottom:2px solid var(--accent); font-weight:600; }
.signout { display:flex; align-items:center; gap:.5rem; color:var(--muted); font-size:.9rem; }
main { max-width:1200px; margin:0 auto; padding:1rem 1.5rem 3rem; }
h1 { font-size:1.4rem; margin:.6rem 0 1rem; }
h2 { font-size:1.1rem; margin:1.6rem 0 .6rem; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:.35rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef1f4; font-weight:600; font-size:.85rem; }
table.narrow { width:auto; min-width:26rem; }
td code { overflow-wrap:anywhere; }
td.when { white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
code, .hash { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.85rem; }
.status { display:inline-block; padding:0 .45rem; border-radius:.6rem; font-size:.8rem; font-weight:600; background:#e4e8ec; }
.status.done { background:#dcefe0; color:var(--ok); } .status.failed { background:#f6dcdd; color:var(--bad); }
.status.running { background:#dde7f7; color:var(--accent); } .overdue { color:var(--bad); font-weight:600; }
.notice { padding:.6rem .8rem; border-radius:.3rem; border:1px solid var(--line); background:#fff; }
.notice.error { border-color:#e7b3b5; background:#fbeeee; color:var(--bad); }
.notice.ok { border-color:#b5dcbf; background:#eef8f0; color:var(--ok); }
form.card, .card { background:#fff; border:1px solid var(--line); border-radius:.3rem; padding:1rem; margin:0 0 1rem; }
label { display:block; margin:.5rem 0 .2rem; font-weight:600; font-size:.9rem; }
input[type=text], input[type=password], input[type=date], textarea, select { font:inherit; padding:.35rem .5rem; border:1px solid #b9c1c9; border-radius:.25rem; width:100%; max-width:28rem; }
textarea { min-height:8rem; font-family:ui-monospace, monospace; }
button { font:inherit; padding:.35rem .9rem; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:.25rem; cursor:pointer; }
button.secondary { background:#fff; color:var(--accent); }
.actions { display:flex; gap:.6rem; align-items:center; margin-top:.8rem; flex-wrap:wrap; }
.actions form { margin:0; }
.muted { color:var(--muted); } .small { font-size:.85rem; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:.25rem 1rem; background:#fff; border:1px solid var(--line); padding:.8rem 1rem; margin:0; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; }
.filters { display:flex; gap:.8rem; align-items:end; flex-wrap:wrap; }
.filters label { margin:0 0 .2rem; } .filters input, .filters select { width:auto; }
progress { width:8rem; vertical-align:middle; }
.pager { display:flex; gap:1rem; margin-top:.6rem; }
`;
