/**
 * Model downloads against a loopback fake of the Hub (test/helpers/fake-hub.ts) serving a tiny
 * synthetic model: full download into the Hugging Face hub cache layout (the snapshot loads), a cache
 * huggingface_hub filled, resume after a cut connection, checksum mismatch, offline mode, the token
 * and redirects, dtype selection, HTTP and DNS errors, locks, and the `florence2 models` command.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir, hostname, tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { scanCacheDir } from '@huggingface/hub';
import { Florence2 } from '../../src/index';
import {
  ChecksumError,
  HubHttpError,
  LockedError,
  NetworkError,
  OfflineError,
  defaultDtypes,
  hubCacheDir,
  listModels,
  modelPath,
  parseDtypeArg,
  removeModel,
  resolveModel,
  snapshotOf,
  type DownloadProgress,
  type ResolveSpec,
} from '../../src/hub';
import { models } from '../../src/cli/models';
import { resolveModelDir } from '../../src/annotate/backends';
import { AutoAnnotator } from '../../src/annotate/annotator';
import { FakeHub, isLfs } from '../helpers/fake-hub';
import { randomTiny, tinyModel } from '../helpers/synth-models';

const REPO = 'onnx-community/Florence-2-base-ft';
const FP32_ONNX = ['onnx/decoder_model_merged.onnx', 'onnx/embed_tokens.onnx', 'onnx/encoder_model.onnx', 'onnx/vision_encoder.onnx'];
const CONFIGS = [
  'added_tokens.json',
  'config.json',
  'generation_config.json',
  'merges.txt',
  'preprocessor_config.json',
  'special_tokens_map.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
];

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
/** The git blob id of a file: huggingface_hub's blob name for a file not in LFS (its ETag). */
const gitSha1 = (file: string) => {
  const data = readFileSync(file);
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
};

/** Every file and symlink under `dir`, as repository-style paths. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) =>
      relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
        .split(sep)
        .join('/'),
    )
    .sort();
}

/** Collects what a CLI run writes. */
function capture(tty = false) {
  const out = { stdout: '', stderr: '' };
  const io = {
    stdout: { write: (s: string) => (out.stdout += s) },
    stderr: { write: (s: string) => (out.stderr += s), isTTY: tty, columns: 120 },
  };
  return { out, io };
}

describe('hub: model download', function () {
  let source: string;
  let hub: FakeHub;
  let home: string;
  const homes: string[] = [];

  /** resolveModel against the fake with a fresh environment (no HF_TOKEN/offline from the shell). */
  const resolve = (extra: Partial<ResolveSpec> = {}) =>
    resolveModel({ name: 'base-ft', cacheDir: home, endpoint: hub.endpoint, env: {}, retryDelayMs: 5, timeoutMs: 10_000, ...extra });
  const repoRoot = (repo = REPO) => join(home, `models--${repo.replace('/', '--')}`);
  const modelDir = (repo = REPO) => join(repoRoot(repo), 'snapshots', hub.commitOf(repo));

  const total = () => [...CONFIGS, ...FP32_ONNX].reduce((a, f) => a + statSync(join(source, f)).size, 0);

  before(async () => {
    source = await randomTiny(); // fp32 + fp16 graphs, plus decoder_model.onnx and synthetic.json that a pull must skip
    const eightBit = await tinyModel({ name: 'tiny-random-fp32-int8', seed: 1, dtypes: ['fp32', 'int8'] });
    hub = await FakeHub.start({
      repos: [
        { id: REPO, dir: source },
        { id: 'acme/tiny', dir: source },
        { id: 'acme/tiny-int8', dir: eightBit },
      ],
    });
  });
  after(async () => {
    await hub?.close();
    for (const h of homes) rmSync(h, { recursive: true, force: true });
  });
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'florence2-hub-')); // the hub cache (HF_HUB_CACHE)
    homes.push(home);
    hub.faults = {};
    hub.log.length = 0;
  });

  it('downloads into the hub cache layout (blobs, relative snapshot links, refs/main), loads it, then serves it from the cache', async () => {
    const events: DownloadProgress[] = [];
    const r = await resolve({ onProgress: (p) => events.push({ ...p }) });
    assert.equal(r.downloaded, true);
    assert.equal(r.dir, modelDir());
    assert.equal(r.commit, hub.commitOf(REPO));
    // `auto` on CPU prefers int8; this repository has only fp32 and fp16, so every module falls back to fp32
    assert.deepEqual(r.dtype, { vision_encoder: 'fp32', embed_tokens: 'fp32', encoder_model: 'fp32', decoder_model_merged: 'fp32' });

    // Exactly the files the server needs: no fp16 variants, no plain decoder, no synthetic.json.
    assert.deepEqual(tree(r.dir), [...CONFIGS, ...FP32_ONNX].sort());
    const blobs = new Set<string>();
    for (const f of [...CONFIGS, ...FP32_ONNX]) {
      assert.equal(statSync(join(r.dir, f)).size, statSync(join(source, f)).size, f);
      assert.equal(sha256(join(r.dir, f)), sha256(join(source, f)), f);
      // huggingface_hub's layout: a relative symlink to blobs/<sha256> (LFS) or blobs/<git blob sha1>
      assert.ok(lstatSync(join(r.dir, f)).isSymbolicLink(), f);
      const blob = isLfs(f) ? hub.fileInfo(REPO, f).sha256 : gitSha1(join(source, f));
      assert.equal(readlinkSync(join(r.dir, f)), relative(dirname(join(r.dir, f)), join(repoRoot(), 'blobs', blob)), f);
      blobs.add(blob);
    }
    assert.deepEqual(readdirSync(join(repoRoot(), 'blobs')).sort(), [...blobs].sort());
    assert.equal(readFileSync(join(repoRoot(), 'refs', 'main'), 'utf8'), hub.commitOf(REPO)); // no newline, as huggingface_hub writes it
    // Nothing else left: no incomplete download, no lock.
    assert.deepEqual(readdirSync(repoRoot()).sort(), ['blobs', 'refs', 'snapshots']);
    assert.deepEqual(readdirSync(home), [`models--onnx-community--Florence-2-base-ft`]);

    // An independent reader of the layout (@huggingface/hub's scan; it does not descend into onnx/) agrees.
    const scan = await scanCacheDir(home);
    assert.deepEqual(scan.warnings, []);
    assert.deepEqual(
      scan.repos.map((x) => [x.id.name, x.id.type, x.revisions.map((v) => [v.commitOid, v.refs])]),
      [[REPO, 'model', [[hub.commitOf(REPO), ['main']]]]],
    );
    assert.deepEqual(scan.repos[0].revisions[0].files.map((f) => relative(r.dir, f.path)).sort(), CONFIGS);

    // the server's ModelInfo.revision comes from the snapshot path; any other folder is `local`
    assert.deepEqual(snapshotOf(r.dir), { repo: REPO, commit: hub.commitOf(REPO) });
    assert.equal(snapshotOf(source), null);
    assert.equal(snapshotOf(join(repoRoot(), 'snapshots', 'main')), null);

    const [listed] = await listModels(home);
    assert.deepEqual(
      { ...listed, modifiedAt: undefined },
      {
        name: 'base-ft',
        repo: REPO,
        revision: 'main',
        commit: hub.commitOf(REPO),
        dir: r.dir,
        state: 'complete',
        bytes: total(),
        files: CONFIGS.length + FP32_ONNX.length,
        dtypes: { vision_encoder: ['fp32'], embed_tokens: ['fp32'], encoder_model: ['fp32'], decoder_model_merged: ['fp32'] },
        modifiedAt: undefined,
      },
    );

    // LFS files: the Hub answers 302 (HEAD and GET), the bytes come from the CDN host.
    const lfs = hub.requestsFor('onnx/vision_encoder.onnx');
    assert.deepEqual(
      lfs.map((q) => `${q.server} ${q.method} ${q.status}`),
      ['hub HEAD 302', 'hub GET 302', 'cdn GET 200'],
    );
    assert.ok(
      lfs.every((q) => q.url.includes(hub.commitOf(REPO)) || q.server === 'cdn'),
      'files are fetched at the pinned commit',
    );
    assert.deepEqual(
      hub.requestsFor('config.json').map((q) => `${q.server} ${q.method} ${q.status}`),
      ['hub HEAD 200', 'hub GET 200'],
    );

    // Progress: per file and overall, ending at the total.
    const last = events[events.length - 1];
    assert.equal(last.event, 'done');
    assert.equal(last.bytes, total());
    assert.equal(last.total, total());
    assert.equal(events.filter((e) => e.event === 'done').length, CONFIGS.length + FP32_ONNX.length);

    const model = await Florence2.load(r.dir);
    try {
      assert.deepEqual(
        Object.values(model.files)
          .map((f) => relative(r.dir, f).split(sep).join('/'))
          .sort(),
        FP32_ONNX,
      );
    } finally {
      await model.release();
    }

    // Second call: the cache, and not one request.
    hub.log.length = 0;
    const again = await resolve();
    assert.deepEqual(again, { ...r, downloaded: false });
    assert.equal(hub.log.length, 0);
    assert.equal(await modelPath('base-ft', home), r.dir);
  });

  it('resumes with Range from the cut point when the connection drops mid-file', async () => {
    const file = 'onnx/decoder_model_merged.onnx';
    const cut = 1_000_003;
    assert.ok(hub.fileInfo(REPO, file).size > 2 * cut);
    hub.faults.cutAfter = { file, bytes: cut };
    const r = await resolve({ retries: 2 });
    const gets = hub.requestsFor(file, { server: 'cdn', method: 'GET' });
    assert.equal(gets.length, 2);
    assert.equal(gets[0].range, undefined);
    assert.equal(gets[1].range, `bytes=${cut}-`);
    assert.equal(gets[1].status, 206);
    assert.equal(sha256(join(r.dir, file)), hub.fileInfo(REPO, file).sha256);
  });

  it('resumes an interrupted pull in a later run, keeping the files already complete', async () => {
    const file = 'onnx/decoder_model_merged.onnx';
    const cut = 777_777;
    hub.faults.cutAfter = { file, bytes: cut };
    await assert.rejects(resolve({ retries: 0 }), (e: Error) => e instanceof NetworkError && e.message.includes(file));
    const incomplete = join(repoRoot(), 'blobs', `${hub.fileInfo(REPO, file).sha256}.florence2.incomplete`);
    // The cut file stays as a resumable .incomplete of exactly the bytes received; no usable snapshot, no ref.
    assert.equal(statSync(incomplete).size, cut);
    assert.equal(existsSync(join(modelDir(), file)), false);
    assert.equal(existsSync(join(repoRoot(), 'refs')), false);
    assert.equal(await modelPath('base-ft', home), null);
    await assert.rejects(resolve({ offline: true }), OfflineError);
    assert.equal(existsSync(join(home, '.locks')), false);
    assert.deepEqual(
      (await listModels(home)).map((m) => m.state),
      ['partial'],
    );

    hub.log.length = 0;
    const starts: DownloadProgress[] = [];
    const r = await resolve({ onProgress: (p) => p.event === 'start' && starts.push({ ...p }) });
    assert.equal(r.downloaded, true);
    const gets = hub.requestsFor(file, { server: 'cdn', method: 'GET' });
    assert.deepEqual(
      gets.map((g) => g.range),
      [`bytes=${cut}-`],
    );
    // Progress counts the resumed bytes from the start.
    assert.equal(starts.find((p) => p.file === file)?.fileBytes, cut);
    assert.equal(sha256(join(r.dir, file)), hub.fileInfo(REPO, file).sha256);
    // Files finished in the first run are in the snapshot already: not asked about again.
    assert.equal(
      starts.find((p) => p.file === 'onnx/embed_tokens.onnx'),
      undefined,
    );
    assert.deepEqual(hub.requestsFor('onnx/embed_tokens.onnx'), []);
    assert.equal(existsSync(incomplete), false);
    assert.equal(readFileSync(join(repoRoot(), 'refs', 'main'), 'utf8'), r.commit);
  });

  it('starts over when the server ignores Range (200 instead of 206)', async () => {
    const file = 'onnx/embed_tokens.onnx';
    hub.faults.cutAfter = { file, bytes: 500_000 };
    hub.faults.ignoreRange = true;
    const r = await resolve();
    const gets = hub.requestsFor(file, { server: 'cdn', method: 'GET' });
    assert.deepEqual(
      gets.map((g) => [g.range, g.status]),
      [
        [undefined, 200],
        ['bytes=500000-', 200],
      ],
    );
    assert.equal(sha256(join(r.dir, file)), hub.fileInfo(REPO, file).sha256);
  });

  it('rejects a checksum mismatch naming the file and both hashes, leaving no blob of it and no ref', async () => {
    const file = 'onnx/encoder_model.onnx';
    hub.faults.corrupt = { file };
    const want = hub.fileInfo(REPO, file).sha256;
    await assert.rejects(resolve(), (e: Error) => {
      assert.ok(e instanceof ChecksumError, String(e));
      assert.equal(e.file, file);
      assert.match(e.message, new RegExp(`${file}: sha256 mismatch: expected ${want}, got [0-9a-f]{64}`));
      return true;
    });
    // No blob or partial download of the bad file, no ref, no lock: nothing resolves; verified files may stay.
    assert.ok(!tree(home).some((f) => f.includes(want)), tree(home).join('\n'));
    assert.equal(existsSync(join(repoRoot(), 'refs')), false);
    assert.equal(existsSync(join(home, '.locks')), false);
    assert.equal(await modelPath('base-ft', home), null);
    assert.deepEqual(
      (await listModels(home)).map((m) => m.state),
      ['partial'],
    );
  });

  it('offline: an uncached model fails with how to serve a local folder or pull it, without a request', async () => {
    for (const env of [{ FLORENCE2_OFFLINE: '1' }, { HF_HUB_OFFLINE: '1' }]) {
      await assert.rejects(resolve({ env }), (e: Error) => {
        assert.ok(e instanceof OfflineError, String(e));
        assert.match(e.message, /not in the cache/);
        assert.match(e.message, /--model DIR/);
        assert.match(e.message, /florence2 models pull base-ft/);
        return true;
      });
    }
    await assert.rejects(resolve({ offline: true, name: 'acme/tiny', revision: 'v2' }), /florence2 models pull acme\/tiny --revision v2/);
    assert.equal(hub.log.length, 0);
    assert.deepEqual(readdirSync(home), []);
    // a folder of the pre-hub-cache layout is not read, but the message points at it
    const legacyHome = join(home, '..', `${relative(tmpdir(), home)}-legacy`);
    homes.push(legacyHome);
    const legacy = join(legacyHome, 'models', 'onnx-community--Florence-2-base-ft', 'main');
    mkdirSync(legacy, { recursive: true });
    writeFileSync(join(legacy, '.florence2-model.json'), '{}');
    await assert.rejects(resolve({ offline: true, env: { FLORENCE2_HOME: legacyHome } }), (e: Error) => {
      assert.ok(e instanceof OfflineError);
      assert.ok(e.message.includes(`florence2 serve --model ${legacy} serves that folder`), e.message);
      return true;
    });
  });

  it('auto (the default) fetches the measured best variant the repository has, and later resolves from the cache offline', async () => {
    assert.deepEqual(defaultDtypes('cpu'), {
      vision_encoder: 'int8',
      embed_tokens: 'int8',
      encoder_model: 'int8',
      decoder_model_merged: 'int8',
    });
    const r = await resolve({ name: 'acme/tiny-int8' });
    assert.equal(r.downloaded, true);
    assert.deepEqual(r.dtype, defaultDtypes('cpu'));
    const onnxFiles = tree(r.dir).filter((f) => f.startsWith('onnx/'));
    assert.deepEqual(onnxFiles, FP32_ONNX.map((f) => f.replace('.onnx', '_int8.onnx')).sort());
    // the folder loads with `auto` in the library, choosing the same files
    const model = await Florence2.load(r.dir, { dtype: 'auto', intraOpNumThreads: 1 });
    try {
      assert.match(model.files.decoder_model_merged, /decoder_model_merged_int8\.onnx$/);
    } finally {
      await model.release();
    }
    const again = await resolve({ name: 'acme/tiny-int8', offline: true, dtype: 'auto' });
    assert.equal(again.downloaded, false);
    assert.deepEqual(again.dtype, defaultDtypes('cpu'));
    // on a GPU provider auto asks for other variants: this repository lacks fp16, so those modules get fp32
    const gpu = await resolve({ name: 'acme/tiny-int8', device: 'cuda' });
    assert.deepEqual(gpu.dtype, { vision_encoder: 'fp32', embed_tokens: 'fp32', encoder_model: 'fp32', decoder_model_merged: 'fp32' });
  });

  it('offline: a cached model resolves; a dtype it lacks is an OfflineError naming the files', async () => {
    const r = await resolve();
    hub.log.length = 0;
    const offline = await resolve({ env: { FLORENCE2_OFFLINE: 'true' }, endpoint: 'http://127.0.0.1:9' });
    assert.equal(offline.dir, r.dir);
    assert.equal(offline.downloaded, false);
    await assert.rejects(
      resolve({ offline: true, dtype: 'fp16' }),
      (e: Error) => e instanceof OfflineError && e.message.includes('onnx/vision_encoder_fp16.onnx'),
    );
    assert.equal(hub.log.length, 0);
  });

  it('sends HF_TOKEN as a Bearer token to the Hub only, never to the CDN host a redirect leads to', async () => {
    const secure = await FakeHub.start({ repos: [{ id: REPO, dir: source }], token: 'hf_secret' });
    try {
      assert.notEqual(new URL(secure.cdnOrigin).host, new URL(secure.endpoint).host);
      await assert.rejects(resolveModel({ name: 'base-ft', cacheDir: home, endpoint: secure.endpoint, env: {} }), (e: Error) => {
        assert.ok(e instanceof HubHttpError && e.status === 401, String(e));
        assert.match(e.message, /HF_TOKEN/);
        return true;
      });
      secure.log.length = 0;
      const r = await resolveModel({ name: 'base-ft', cacheDir: home, env: { HF_ENDPOINT: `${secure.endpoint}/`, HF_TOKEN: 'hf_secret' } });
      assert.equal(r.downloaded, true);
      const hubRequests = secure.log.filter((q) => q.server === 'hub');
      const cdnRequests = secure.log.filter((q) => q.server === 'cdn');
      assert.ok(hubRequests.length > 0 && cdnRequests.length > 0);
      assert.ok(hubRequests.every((q) => q.authorization === 'Bearer hf_secret'));
      assert.ok(cdnRequests.every((q) => q.authorization === undefined));
      await assert.rejects(
        resolveModel({ name: 'large', cacheDir: home, endpoint: secure.endpoint, env: {}, token: 'wrong' }),
        /HF_TOKEN was rejected/,
      );
    } finally {
      await secure.close();
    }
  });

  it('fetches the ONNX file of the dtype chosen per module, and adds another dtype to a cached folder', async () => {
    const r = await resolve({ dtype: parseDtypeArg('vision_encoder=fp16,embed_tokens=fp16') });
    const onnx = tree(r.dir).filter((f) => f.startsWith('onnx/'));
    assert.deepEqual(onnx, [
      'onnx/decoder_model_merged.onnx',
      'onnx/embed_tokens_fp16.onnx',
      'onnx/encoder_model.onnx',
      'onnx/vision_encoder_fp16.onnx',
    ]);
    assert.deepEqual(await resolve({ device: 'cuda' }).then((x) => x.downloaded), false); // the cuda default is that table

    hub.log.length = 0;
    const all = await resolve({ dtype: 'fp16' });
    assert.equal(all.downloaded, true);
    const fetched = hub.log.filter((q) => q.file !== undefined && (q.server === 'cdn' || q.status === 200)).map((q) => q.file);
    assert.deepEqual([...new Set(fetched)].sort(), ['onnx/decoder_model_merged_fp16.onnx', 'onnx/encoder_model_fp16.onnx']);
    assert.equal(all.dir, r.dir, 'added to the same snapshot');
    const [m] = await listModels(home);
    assert.deepEqual(m.dtypes, {
      vision_encoder: ['fp16'],
      embed_tokens: ['fp16'],
      encoder_model: ['fp32', 'fp16'],
      decoder_model_merged: ['fp32', 'fp16'],
    });
    const model = await Florence2.load(r.dir, { dtype: 'fp16' });
    await model.release();

    await assert.rejects(
      resolve({ dtype: 'q4' }),
      /onnx\/vision_encoder_q4\.onnx \(dtype q4 of vision_encoder; this repository has fp32, fp16\)/,
    );
  });

  it('names the missing file on a 404 and the repository when it does not exist, leaving nothing behind', async () => {
    hub.faults.notFound = ['onnx/encoder_model.onnx'];
    await assert.rejects(resolve(), (e: Error) => {
      assert.ok(e instanceof HubHttpError && e.status === 404, String(e));
      assert.match(e.message, /onnx\/encoder_model\.onnx not found in onnx-community\/Florence-2-base-ft/);
      return true;
    });
    assert.equal(hub.log.filter((q) => q.status === 404).length, 1, 'no retry on 404');
    assert.deepEqual(readdirSync(home), []);
    await assert.rejects(resolve({ name: 'acme/missing' }), /repository acme\/missing not found/);
    await assert.rejects(resolve({ revision: 'nope' }), /revision nope of onnx-community\/Florence-2-base-ft not found/);
  });

  it('retries 5xx answers with backoff, and gives up after the bound', async () => {
    hub.faults.unavailable = { file: 'config.json', times: 2 };
    const r = await resolve({ retries: 2 });
    assert.equal(r.downloaded, true);
    assert.deepEqual(
      hub.requestsFor('config.json', { method: 'GET' }).map((q) => q.status),
      [503, 503, 200],
    );

    rmSync(repoRoot(), { recursive: true });
    hub.faults.unavailable = { file: 'config.json', times: 5 };
    await assert.rejects(resolve({ retries: 1 }), (e: Error) => e instanceof HubHttpError && e.status === 503);
  });

  it('refuses a pull while a live process holds the lock, and replaces a stale lock', async () => {
    const root = join(home, '.locks', 'models--onnx-community--Florence-2-base-ft');
    mkdirSync(root, { recursive: true });
    writeFileSync(
      join(root, 'florence2.lock'),
      JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString() }),
    );
    await assert.rejects(resolve(), (e: Error) => e instanceof LockedError && e.message.includes(`pid ${process.pid}`));
    await assert.rejects(removeModel('base-ft', home), LockedError);
    // Above Linux's highest pid: no such process.
    writeFileSync(
      join(root, 'florence2.lock'),
      JSON.stringify({ pid: 4_194_304 + 17, host: hostname(), startedAt: new Date().toISOString() }),
    );
    assert.equal((await resolve()).downloaded, true);
    assert.equal(existsSync(join(root, 'florence2.lock')), false);
  });

  it('runs concurrent pulls of one model in this process one after the other', async () => {
    const [a, b] = await Promise.all([resolve(), resolve()]);
    assert.equal(a.dir, b.dir);
    assert.deepEqual([a.downloaded, b.downloaded].sort(), [false, true]);
  });

  /**
   * A cache as Python's huggingface_hub leaves it, written here by hand: blobs named by sha256 (LFS)
   * or git blob sha1, snapshot files as relative symlinks, refs/<revision> holding the commit.
   */
  function pythonCache(cacheDir: string, repo: string, commit: string, files: string[], ref: string | null = 'main'): string {
    const root = join(cacheDir, `models--${repo.replace('/', '--')}`);
    const snap = join(root, 'snapshots', commit);
    for (const f of files) {
      const blob = join(root, 'blobs', isLfs(f) ? sha256(join(source, f)) : gitSha1(join(source, f)));
      mkdirSync(dirname(blob), { recursive: true });
      writeFileSync(blob, readFileSync(join(source, f)));
      mkdirSync(dirname(join(snap, f)), { recursive: true });
      symlinkSync(relative(dirname(join(snap, f)), blob), join(snap, f));
    }
    if (ref !== null) {
      mkdirSync(join(root, 'refs'), { recursive: true });
      writeFileSync(join(root, 'refs', ref), commit);
    }
    return snap;
  }

  it('finds a model Python tools put in the hub cache (HF_HUB_CACHE) without a download, online and offline', async () => {
    const commit = hub.commitOf(REPO);
    const snap = pythonCache(home, REPO, commit, [...CONFIGS, ...FP32_ONNX]);
    const env = { HF_HUB_CACHE: home, HF_ENDPOINT: hub.endpoint };
    const online = await resolveModel({ name: 'base-ft', env });
    assert.deepEqual(online, { dir: snap, downloaded: false, repo: REPO, revision: 'main', commit, dtype: online.dtype });
    assert.deepEqual(Object.values(online.dtype), ['fp32', 'fp32', 'fp32', 'fp32']);
    for (const offline of [{ HF_HUB_OFFLINE: '1' }, { FLORENCE2_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' }]) {
      const r = await resolveModel({ name: 'base-ft', env: { ...env, ...offline } });
      assert.equal(r.dir, snap);
      assert.equal(r.downloaded, false);
    }
    // a commit resolves without refs/, offline
    assert.equal((await resolveModel({ name: 'base-ft', revision: commit, env: { ...env, HF_HUB_OFFLINE: '1' } })).dir, snap);
    await assert.rejects(
      resolveModel({ name: 'base-ft', revision: 'f'.repeat(40), env: { ...env, HF_HUB_OFFLINE: '1' } }),
      /is not in the cache/,
    );
    assert.equal(hub.log.length, 0, 'not one request to the Hub');
    const model = await Florence2.load(snap, { intraOpNumThreads: 1 });
    await model.release();
    assert.equal(await modelPath('base-ft', home), snap);
    assert.deepEqual(
      (await listModels(home)).map((m) => [m.name, m.revision, m.state]),
      [['base-ft', 'main', 'complete']],
    );

    // What the Python cache lacks (fp16 variants) is fetched at its commit into the same snapshot, nothing else.
    const fp16 = await resolveModel({ name: 'base-ft', env, dtype: 'fp16', retryDelayMs: 5 });
    assert.equal(fp16.dir, snap);
    assert.equal(fp16.downloaded, true);
    const gets = hub.log.filter((q) => q.method === 'GET' && q.file !== undefined && (q.server === 'cdn' || q.status === 200));
    assert.deepEqual([...new Set(gets.map((q) => q.file))].sort(), FP32_ONNX.map((f) => f.replace('.onnx', '_fp16.onnx')).sort());
    assert.ok(
      hub.log.filter((q) => q.server === 'hub').every((q) => !q.url.includes('/resolve/main/')),
      'pinned to the cached commit',
    );
  });

  it('does not take a half-downloaded Python snapshot for a model; a pull completes it', async () => {
    const snap = pythonCache(home, REPO, hub.commitOf(REPO), ['config.json', 'onnx/vision_encoder.onnx']);
    await assert.rejects(resolve({ offline: true }), (e: Error) => e instanceof OfflineError && e.message.includes('tokenizer.json'));
    assert.equal(await modelPath('base-ft', home), null);
    const r = await resolve();
    assert.equal(r.dir, snap);
    assert.deepEqual(hub.requestsFor('onnx/vision_encoder.onnx'), [], 'a file the snapshot has is not fetched');
    assert.deepEqual(tree(snap), [...CONFIGS, ...FP32_ONNX].sort());
  });

  it('models rm --revision removes that snapshot, its refs and the blobs only it used', async () => {
    const other = 'e'.repeat(40);
    const keep = pythonCache(home, REPO, other, [...CONFIGS, ...FP32_ONNX], 'v1');
    const r = await resolve({ dtype: 'fp16' }); // main: the fp16 files, at the hub's commit
    const before = readdirSync(join(repoRoot(), 'blobs'));
    const c = capture();
    assert.equal(await models(['rm', 'base-ft', '--revision', 'main'], { HF_HUB_CACHE: home }, c.io), 0, c.out.stderr);
    assert.equal(c.out.stdout, `removed ${r.dir}\n`);
    assert.equal(existsSync(r.dir), false);
    assert.equal(existsSync(join(repoRoot(), 'refs', 'main')), false);
    const after = readdirSync(join(repoRoot(), 'blobs'));
    // the configs are shared with v1's snapshot and stay; the fp16 graphs went
    assert.ok(after.length < before.length && after.length === CONFIGS.length + FP32_ONNX.length, `${before.length} -> ${after.length}`);
    assert.equal(await modelPath('base-ft', home, 'v1'), keep);
    assert.equal(sha256(join(keep, 'tokenizer.json')), sha256(join(source, 'tokenizer.json')));
    assert.equal(await models(['rm', 'base-ft', '--revision', 'main'], { HF_HUB_CACHE: home }, capture().io), 1);
  });

  it('finds the hub cache as huggingface_hub does: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/a', HF_HOME: '/b' }), '/a');
    assert.equal(hubCacheDir({ HF_HOME: '/b' }), join('/b', 'hub'));
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), join('/x', 'huggingface', 'hub'));
    assert.equal(hubCacheDir({}), join(homedir(), '.cache', 'huggingface', 'hub'));
  });

  it('fails at once, without retrying, when the Hub host name does not resolve', async () => {
    // With retries at the default (5, backoff from 1 s) a retried DNS failure took ~30 s; the attempt
    // count in the message is what is checked (a resolver's own timeouts make wall time no measure).
    await assert.rejects(
      resolveModel({ name: 'base-ft', cacheDir: home, env: { HF_ENDPOINT: 'http://nonexistent.invalid' } }),
      (e: Error) => {
        assert.ok(e instanceof NetworkError, String(e));
        assert.match(e.message, /nonexistent\.invalid/);
        assert.match(e.message, /(ENOTFOUND|EAI_AGAIN).*(does not resolve|no DNS server answered)/);
        assert.match(e.message, /not retried: 1 attempt\)/);
        return true;
      },
    );
    assert.deepEqual(readdirSync(home), [], 'nothing left in the cache');
    const c = capture();
    assert.equal(await models(['pull', 'base-ft'], { HF_HUB_CACHE: home, HF_ENDPOINT: 'http://nonexistent.invalid' }, c.io), 1);
    assert.match(c.out.stderr, /does not resolve|no DNS server answered/);
  });

  it('retries a 429 after the Retry-After it states', async () => {
    hub.faults.tooMany = { file: 'config.json', times: 1, retryAfter: 1 };
    const r = await resolve({ retryDelayMs: 1 });
    assert.equal(r.downloaded, true);
    const tries = hub.requestsFor('config.json', { method: 'GET' });
    assert.deepEqual(
      tries.map((q) => q.status),
      [429, 200],
    );
    assert.ok(tries[1].at - tries[0].at >= 900, `retried after ${tries[1].at - tries[0].at} ms, not the 1 s asked for`);
  });

  describe('florence2 models', () => {
    const env = () => ({ HF_HUB_CACHE: home, HF_ENDPOINT: hub.endpoint });

    it('pull --dtype auto is the default: the int8 files where the repository has them, fp32 where not', async () => {
      let c = capture();
      assert.equal(await models(['pull', 'acme/tiny-int8', '--dtype', 'auto'], env(), c.io), 0, c.out.stderr);
      const dir = c.out.stdout.trim();
      assert.deepEqual(
        tree(dir).filter((f) => f.startsWith('onnx/')),
        FP32_ONNX.map((f) => f.replace('.onnx', '_int8.onnx')).sort(),
      );
      c = capture();
      assert.equal(await models(['pull', 'base-ft', '--dtype', ' auto '], env(), c.io), 0, c.out.stderr);
      assert.deepEqual(
        tree(c.out.stdout.trim()).filter((f) => f.startsWith('onnx/')),
        [...FP32_ONNX].sort(),
      );
      // annotate resolves a Hub name the same way and loads what it fetched (the folder has no fp32 files)
      assert.equal(await resolveModelDir('acme/tiny-int8', env()), dir);
      const annotator = new AutoAnnotator({ model: 'acme/tiny-int8', env: env() });
      try {
        await annotator.backend();
      } finally {
        await annotator.close();
      }
    });

    it('pull, list, path and rm with their exit codes', async () => {
      let c = capture();
      assert.equal(await models(['pull', 'base-ft'], env(), c.io), 0, c.out.stderr);
      assert.equal(c.out.stdout, `${modelDir()}\n`);
      assert.match(c.out.stderr, /\[1\/\d+\] /);
      assert.match(c.out.stderr, /pulled onnx-community\/Florence-2-base-ft \(revision main/);

      c = capture();
      assert.equal(await models(['pull', 'base-ft'], env(), c.io), 0);
      assert.match(c.out.stderr, /already cached/);

      c = capture();
      assert.equal(await models(['list'], env(), c.io), 0);
      assert.match(c.out.stdout, /^NAME\s+REVISION\s+COMMIT/);
      assert.match(c.out.stdout, new RegExp(`base-ft\\s+main\\s+${hub.commitOf(REPO).slice(0, 12)}\\s+complete`));

      c = capture();
      assert.equal(await models(['list', '--json'], env(), c.io), 0);
      const listed = JSON.parse(c.out.stdout);
      assert.equal(listed.length, 1);
      assert.equal(listed[0].repo, REPO);
      assert.equal(listed[0].dir, modelDir());

      c = capture();
      assert.equal(await models(['path', 'base-ft'], env(), c.io), 0);
      assert.equal(c.out.stdout, `${modelDir()}\n`);
      c = capture();
      assert.equal(await models(['path', 'large'], env(), c.io), 1);
      assert.match(c.out.stderr, /not in the cache.*florence2 models pull large/);

      c = capture();
      assert.equal(await models(['rm', 'base-ft'], env(), c.io), 0);
      assert.equal(c.out.stdout, `removed ${repoRoot()}\n`);
      assert.equal(existsSync(repoRoot()), false);
      assert.equal(await models(['path', 'base-ft'], env(), capture().io), 1);
      assert.equal(await models(['rm', 'base-ft'], env(), capture().io), 1);
    });

    it('exit 3 offline, 1 on a checksum failure, 2 on usage errors; --help everywhere', async () => {
      let c = capture();
      assert.equal(await models(['pull', 'base-ft', '--offline'], env(), c.io), 3);
      assert.match(c.out.stderr, /--model DIR/);
      assert.equal(await models(['pull', 'base-ft'], { ...env(), HF_HUB_OFFLINE: '1' }, capture().io), 3);

      hub.faults.corrupt = { file: 'tokenizer.json' };
      c = capture();
      assert.equal(await models(['pull', 'base-ft'], env(), c.io), 1);
      assert.match(c.out.stderr, /tokenizer\.json: sha256 mismatch/);
      assert.equal(c.out.stdout, '');
      hub.faults = {};
      hub.log.length = 0;

      for (const argv of [
        [],
        ['frobnicate'],
        ['pull'],
        ['pull', 'base-ft', 'extra'],
        ['pull', 'no such'],
        ['pull', 'base-ft', '--dtype', 'fp64'],
        ['pull', 'base-ft', '--dtype', 'vision=fp16'],
        ['pull', 'base-ft', '--device', 'tpu'],
        ['pull', 'base-ft', '--bogus'],
        ['list', 'x'],
        ['path'],
        ['rm'],
        ['pull', 'base-ft', '--revision'],
      ]) {
        c = capture();
        assert.equal(await models(argv, env(), c.io), 2, `${argv.join(' ')}: ${c.out.stderr}`);
        assert.ok(c.out.stderr.length > 0);
      }
      for (const argv of [['--help'], ['pull', '--help'], ['list', '-h'], ['path', '--help'], ['rm', '--help']]) {
        c = capture();
        assert.equal(await models(argv, env(), c.io), 0);
        assert.match(c.out.stdout, /^Usage: florence2 models/);
        assert.match(c.out.stdout, /Exit codes:/);
      }
      assert.equal(hub.log.length, 0, 'usage errors and --help make no request');
    });

    it('draws a progress bar on a terminal', async () => {
      const c = capture(true);
      assert.equal(await models(['pull', 'acme/tiny', '--dtype', 'fp16'], env(), c.io), 0, c.out.stderr);
      // eslint-disable-next-line no-control-regex -- the terminal's erase-line escape is what is checked
      assert.match(c.out.stderr, /\r\x1b\[2K\[[#.]+\] /);
      assert.match(c.out.stderr, /100%/);
      assert.equal(c.out.stdout, `${modelDir('acme/tiny')}\n`);
      assert.ok(existsSync(join(modelDir('acme/tiny'), 'onnx', 'decoder_model_merged_fp16.onnx')));
    });
  });
});
