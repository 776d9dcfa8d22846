// Upload a CSV: the file is streamed to a private temporary file (memory stays flat),
// its header and first rows are checked and shown by row number (never by value), and
// only when the person confirms is it imported like `lethe import`, under their role.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CsvRejectedError } from '../../csv/importCsv.js';
import { PREVIEW_ROWS, type RowError } from '../../csv/format.js';
import { checkHead, headErrors } from '../../csv/preview.js';
import { openInput } from '../../csv/reader.js';
import { type AdminContext, type AdminSection, HttpError, send, session } from '../context.js';
import { type Html, html } from '../html.js';
import { csrfField, notice, tableHead } from '../layout.js';
import { type PendingUpload, sameToken, type Session } from '../sessions.js';

const MAX_PENDING_UPLOADS = 3;

function uploadForm(s: Session): Html {
  return html`<form class="card" method="post" action="/upload" enctype="multipart/form-data">
    ${csrfField(s)}
    <p class="muted">
      A CSV with a header row: <code>subject_key</code> (or <code>customer_id</code>, <code>user_ext_id</code>),
      optionally <code>scope</code> (or <code>core_sm_brand_id</code>) and <code>erase</code> (true or 1). Commas, no
      quotes. The header and the first ${PREVIEW_ROWS} rows are checked and shown before anything is queued.
    </p>
    <label for="file">CSV file</label>
    <input type="file" id="file" name="file" accept=".csv,text/csv" required />
    <label for="request_key">Request key (optional: the same key returns the same request)</label>
    <input type="text" id="request_key" name="request_key" maxlength="200" autocomplete="off" />
    <label for="due">Due date (optional, UTC; default: the install's deadline)</label>
    <input type="date" id="due" name="due" />
    <div class="actions"><button>Check the file</button></div>
  </form>`;
}

function rowsTable(rows: Array<{ row: number; reason: string | null }>): Html {
  return html`<table class="narrow">
    ${tableHead('#Row', 'Check')}
    <tbody>
      ${rows.map(
        (r) =>
          html`<tr>
            <td class="num">${r.row}</td>
            <td>
              ${r.reason === null ? html`<span class="status done">valid</span>` : html`<span class="status failed">invalid</span> ${r.reason}`}
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function errorsTable(errors: RowError[], total: number): Html {
  return html`${rowsTable(errors)}${total > errors.length ? html`<p class="muted">… and ${total - errors.length} more.</p>` : ''}`;
}

function dueDate(value: string): Date | undefined {
  if (!value) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) throw new HttpError(400, 'the due date must be a date (YYYY-MM-DD)');
  const d = new Date(`${value}T23:59:59Z`);
  if (Number.isNaN(d.getTime())) throw new HttpError(400, 'the due date is not a valid date');
  return d;
}

/** Reads the multipart body: CSRF token first (the form puts it first), then the file to disk. */
async function receive(ctx: AdminContext, req: FastifyRequest, s: Session): Promise<PendingUpload & { id: string }> {
  const fields: Record<string, string> = {};
  const id = randomUUID();
  const path = join(ctx.uploadDir, `${id}.csv`);
  let saved = false;
  try {
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        if (typeof part.value === 'string') fields[part.fieldname] = part.value.trim();
        continue;
      }
      if (!sameToken(fields._csrf, s.csrfToken)) {
        part.file.resume();
        throw new HttpError(403, 'this form has expired or did not come from this site: reload the page and try again');
      }
      // Asked of PostgreSQL before the file is kept: an auditor's upload stops here.
      if (!s.privileges.importer)
        throw new HttpError(403, 'Your database role may not import erasure requests (no INSERT on pii.import_rows).');
      await pipeline(part.file, createWriteStream(path, { mode: 0o600, flags: 'wx' }));
      saved = true;
      if (part.file.truncated) throw new HttpError(413, 'the file is larger than this server accepts');
    }
    if (!saved) throw new HttpError(400, 'choose a CSV file to upload');
    const requestKey = fields.request_key || undefined;
    if (requestKey) req.submitted.push(requestKey);
    return { id, path, bytes: (await stat(path)).size, requestKey, dueAt: dueDate(fields.due ?? '') };
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
}

async function previewPage(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply) {
  const s = session(req);
  const upload = await receive(ctx, req, s);
  const input = await openInput(upload.path);
  const head = await checkHead(input).finally(() => input.stream.destroy());
  const errors = head.syntaxError ? [head.syntaxError] : head.header.ok ? headErrors(head) : head.header.errors;
  const empty = !head.syntaxError && head.header.ok && head.rows.length === 0;
  const size = `${(upload.bytes / 1024).toFixed(1)} KiB`;
  if (errors.length > 0 || empty) {
    await rm(upload.path, { force: true });
    return send(
      ctx,
      req,
      reply.code(400),
      { title: 'Upload rejected', current: '/upload' },
      html`${notice('error', empty ? 'The file has a header but no data rows: nothing was queued.' : `The file was rejected: ${errors.length} problem(s) in the header or the first ${PREVIEW_ROWS} rows. Nothing was queued.`)}
        ${head.header.ok ? rowsTable(head.rows) : errorsTable(errors, errors.length)}
        <h2>Upload a corrected file</h2>
        ${uploadForm(s)}`,
    );
  }
  // A few files may wait per session; older unconfirmed ones are dropped.
  for (const [id, old] of s.uploads) {
    if (s.uploads.size < MAX_PENDING_UPLOADS) break;
    s.uploads.delete(id);
    await rm(old.path, { force: true });
  }
  s.uploads.set(upload.id, upload);
  const layout = head.header.ok ? head.header.layout : undefined;
  return send(
    ctx,
    req,
    reply,
    { title: 'Check the upload', current: '/upload' },
    html`${notice('ok', `The header and the first ${head.rows.length} row(s) are valid. Nothing is queued until you import.`)}
      <dl class="facts">
        <dt>Size</dt>
        <dd>${size}</dd>
        <dt>Columns</dt>
        <dd>${layout?.columns.join(', ')}</dd>
        ${
          upload.requestKey
            ? html`<dt>Request key</dt>
                <dd>given</dd>`
            : ''
        }
        <dt>Due</dt>
        <dd>${upload.dueAt ?? 'the default deadline'}</dd>
      </dl>
      <h2>First rows</h2>
      ${rowsTable(head.rows)}
      <p class="muted small">
        The rest of the file is checked while it is imported; any invalid row rejects the whole file and queues nothing.
      </p>
      <div class="actions">
        <form method="post" action="/upload/${upload.id}/import">
          ${csrfField(s)}<button>Import and queue the erasure</button>
        </form>
        <form method="post" action="/upload/${upload.id}/cancel">
          ${csrfField(s)}<button class="secondary">Cancel</button>
        </form>
      </div>`,
  );
}

function pending(req: FastifyRequest, s: Session): [string, PendingUpload] {
  const id = (req.params as { upload: string }).upload;
  const upload = s.uploads.get(id);
  if (!upload) throw new HttpError(404, 'this upload is no longer waiting (imported, cancelled, or signed out)');
  s.uploads.delete(id);
  return [id, upload];
}

export const uploadSection: AdminSection = {
  nav: [{ path: '/upload', label: 'Upload CSV', when: (s) => s.privileges.importer }],
  register(app, ctx) {
    app.get('/upload', async (req, reply) =>
      send(ctx, req, reply, { title: 'Upload a CSV of people to erase', current: '/upload' }, uploadForm(session(req))),
    );
    app.post('/upload', { config: { csrfInHandler: true } }, (req, reply) => previewPage(ctx, req, reply));
    app.post('/upload/:upload/import', async (req, reply) => {
      const s = session(req);
      const [, upload] = pending(req, s);
      if (upload.requestKey) req.submitted.push(upload.requestKey);
      try {
        const report = await s.lethe.importCsv(upload.path, {
          requestKey: upload.requestKey,
          dueAt: upload.dueAt,
          source: 'admin-csv',
          listLimit: 100,
        });
        return reply.redirect(`/requests/${report.requestId}`, 303);
      } catch (err) {
        if (!(err instanceof CsvRejectedError)) throw err;
        return send(
          ctx,
          req,
          reply.code(400),
          { title: 'Upload rejected', current: '/upload' },
          html`${notice('error', err.message)}${errorsTable(err.rows, err.rejected)}
            <h2>Upload a corrected file</h2>
            ${uploadForm(s)}`,
        );
      } finally {
        await rm(upload.path, { force: true });
      }
    });
    app.post('/upload/:upload/cancel', async (req, reply) => {
      const [, upload] = pending(req, session(req));
      await rm(upload.path, { force: true });
      return reply.redirect('/upload', 303);
    });
  },
};
