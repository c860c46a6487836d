/**
 * `florence2 serve`: load and validate the configuration, start the server, stop gracefully on
 * SIGTERM/SIGINT, reload on SIGHUP.
 *
 * Signals, from the start of the workers on (Node's default handlers, which end the process at once,
 * never apply then):
 * - the first SIGTERM or SIGINT starts the drain (`--shutdown-grace-ms`): no new connection, GOAWAY
 *   on the open ones, in-flight work finishes; exit 0 once it ends;
 * - the second is logged and the drain goes on (a SIGINT right after a SIGINT is one Ctrl-C
 *   delivered twice, see {@link SAME_CTRL_C_MS});
 * - the third forces the stop: what still runs or waits is answered UNAVAILABLE at once, the
 *   transport closes, the workers end their batches at their next decoder step (a thread is never
 *   terminated inside native code), and the process exits {@link EXIT.forcedStop};
 * - SIGHUP reloads what may change while serving (`RunningServer.reload`); it never stops the server.
 */
import { ConfigError, helpText, isHelpRequested, loadConfig } from '../config/load';
import { createLogger } from '../common/logger';
import { startServer } from '../server/main';
import { HUB_MODEL_PREFIX } from '../config/schema';
import { NetworkError, OfflineError, resolveModel } from '../hub';
import type { Config } from '../config/load';
import type { Logger } from '../common/logger';
import type { RunningServer } from '../server/main';
import { EXIT } from './exit-codes';

/** The stop signal that forces the stop (the first drains, the ones between are logged). */
const FORCE_ON_STOP_SIGNAL = 3;

/**
 * Under `npm start` / `npm run demo` one Ctrl-C arrives twice: the terminal sends SIGINT to the whole
 * foreground process group, and npm forwards the one it got to its child. A SIGINT this soon after
 * the previous counted one is taken as that same Ctrl-C, so one press drains and two more force.
 */
const SAME_CTRL_C_MS = 300;

/** A Hub model name in the configuration → its cached folder, downloaded first if needed. */
async function localModel(config: Config, env: NodeJS.ProcessEnv, logger: Logger): Promise<Config> {
  if (!config.model.startsWith(HUB_MODEL_PREFIX)) return config;
  const name = config.model.slice(HUB_MODEL_PREFIX.length);
  let lastLog = 0;
  // `auto` differs per device kind: fetch each kind's files, so every pool finds what it loads
  const providers = config.dtype === 'auto' ? [...new Set(config.devices.map((d) => d.provider))] : [config.devices[0]?.provider];
  let dir = '';
  for (const device of providers) {
    const resolved = await resolveModel({
      name,
      dtype: config.dtype,
      device,
      env,
      // Unset leaves HF_HUB_OFFLINE (read by the Hub code) in force.
      offline: config.offline || undefined,
      onProgress: (p) => {
        const now = Date.now();
        if (p.event !== 'progress' || now - lastLog > 5000) {
          lastLog = now;
          logger.info('downloading model', { model: name, file: p.file, event: p.event, bytes: p.bytes, total: p.total });
        }
      },
    });
    logger.info(resolved.downloaded ? 'model downloaded' : 'model found in cache', {
      model: name,
      dir: resolved.dir,
      commit: resolved.commit,
      ...(device === undefined ? {} : { device }),
    });
    dir = resolved.dir;
  }
  return Object.freeze({ ...config, model: dir });
}

export async function serve(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (isHelpRequested(argv)) {
    process.stdout.write(helpText());
    return EXIT.ok;
  }
  let config;
  try {
    config = loadConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(
        `florence2 serve: invalid configuration\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n\nSee florence2 serve --help.\n`,
      );
      return EXIT.usage;
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  try {
    config = await localModel(config, env, logger);
  } catch (err) {
    if (err instanceof OfflineError) {
      process.stderr.write(`florence2 serve: ${err.message}\n`);
      return EXIT.unreachable;
    }
    if (err instanceof NetworkError) {
      // No route to the Hub is this machine being offline: say what to do instead.
      process.stderr.write(
        `florence2 serve: cannot download ${config.model.slice(HUB_MODEL_PREFIX.length)}: ${err.message}\n` +
          'Either serve a model folder you already have: florence2 serve --model DIR (or FLORENCE2_MODEL=DIR),\n' +
          'or set HF_ENDPOINT to a reachable Hub mirror; --offline (FLORENCE2_OFFLINE=1) skips the network entirely.\n',
      );
      return EXIT.unreachable;
    }
    logger.error('cannot get the model', { err });
    return EXIT.failure;
  }
  // Signals may arrive while workers are still loading: they are counted and acted on once started
  // (workers must not be torn down in the middle of creating their sessions). The listeners stay
  // until the process exits, so no signal of these three ever gets Node's default (exit at once).
  let running: RunningServer | null = null;
  let stops = 0;
  let firstStop = '';
  let reloadPending = false;
  let forced = false;
  let exitWith: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => (exitWith = resolve));

  const stop = (server: RunningServer, signal: string) => {
    server.shutdown(signal).then(
      () => exitWith(forced ? EXIT.forcedStop : EXIT.ok),
      (err) => {
        logger.error('shutdown failed', { err });
        exitWith(EXIT.failure);
      },
    );
  };
  const force = (server: RunningServer, signal: string) => {
    forced = true;
    // The same promise as the drain's: `stop` above answers with the exit code.
    void server.shutdown(signal, { force: true }).catch(() => {});
  };
  const reload = (server: RunningServer, signal: string) => {
    server.reload().then(
      (r) => logger.info('reloaded', { signal, reloaded: r.reloaded }),
      (err) => logger.error('reload failed; serving on with what was loaded before', { signal, err }),
    );
  };

  const onStopSignal = (signal: string) => {
    stops += 1;
    const remaining = Math.max(0, FORCE_ON_STOP_SIGNAL - stops);
    if (stops === 1) {
      firstStop = signal;
      if (running) stop(running, signal);
      else logger.info('stop requested during startup; stopping once workers are up', { signal });
    } else if (stops < FORCE_ON_STOP_SIGNAL) {
      logger.warn(running ? 'signal received again; the drain goes on' : 'signal received again; stopping once workers are up', {
        signal,
        received: stops,
        remainingBeforeForcedStop: remaining,
      });
    } else if (stops === FORCE_ON_STOP_SIGNAL) {
      logger.warn(
        running
          ? 'signal received again; forcing the stop'
          : 'signal received again; forcing the stop once workers are up (they cannot be stopped while loading)',
        { signal, received: stops, exitCode: EXIT.forcedStop },
      );
      if (running) force(running, signal);
    } else {
      logger.warn('signal received again; the stop is already forced, the workers end their batches at their next decoder step', {
        signal,
        received: stops,
      });
    }
  };
  const onHangup = () => {
    const signal = 'SIGHUP';
    if (stops > 0) return logger.info('signal received while stopping; nothing is reloaded', { signal });
    if (!running) {
      reloadPending = true;
      return logger.info('signal received during startup; reloading once serving', { signal });
    }
    logger.info('signal received; reloading', { signal });
    reload(running, signal);
  };
  process.on('SIGTERM', () => onStopSignal('SIGTERM'));
  let lastSigint = -Infinity;
  process.on('SIGINT', () => {
    const now = performance.now();
    if (now - lastSigint < SAME_CTRL_C_MS) return logger.debug('SIGINT again at once: the same Ctrl-C, forwarded by npm');
    lastSigint = now;
    onStopSignal('SIGINT');
  });
  process.on('SIGHUP', onHangup);

  try {
    running = await startServer(config, logger);
  } catch (err) {
    logger.error('failed to start', { err });
    return EXIT.failure;
  }
  if (stops > 0) {
    stop(running, firstStop);
    if (stops >= FORCE_ON_STOP_SIGNAL) force(running, firstStop);
  } else if (reloadPending) {
    reload(running, 'SIGHUP');
  }
  return exited;
}
