/** `florence2 serve`: load and validate the configuration, start the server, stop gracefully on SIGTERM/SIGINT. */
import { ConfigError, helpText, isHelpRequested, loadConfig } from '../config/load';
import { createLogger } from '../common/logger';
import { startServer } from '../server/main';
import { HUB_MODEL_PREFIX } from '../config/schema';
import { NetworkError, OfflineError, resolveModel } from '../hub';
import type { Config } from '../config/load';
import type { Logger } from '../common/logger';
import { EXIT } from './exit-codes';

/** Exit code when the model is not cached and the Hub may not be reached (offline). */

/** A Hub model name in the configuration → its cached folder, downloaded first if needed. */
async function localModel(config: Config, env: NodeJS.ProcessEnv, logger: Logger): Promise<Config> {
  if (!config.model.startsWith(HUB_MODEL_PREFIX)) return config;
  const name = config.model.slice(HUB_MODEL_PREFIX.length);
  let lastLog = 0;
  const resolved = await resolveModel({
    name,
    dtype: config.dtype,
    device: config.devices[0]?.provider,
    env,
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
  });
  return Object.freeze({ ...config, model: resolved.dir });
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
  const logger = createLogger({ level: config.logLevel });
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
          'or set HF_ENDPOINT to a reachable Hub mirror; FLORENCE2_OFFLINE=1 skips the network entirely.\n',
      );
      return EXIT.unreachable;
    }
    logger.error('cannot get the model', { err });
    return EXIT.failure;
  }
  // Signals may arrive while workers are still loading: remember them and shut down once started
  // (workers must not be torn down in the middle of creating their sessions).
  let stopSignal: string | null = null;
  let onStop: (signal: string) => void = (signal) => {
    stopSignal = signal;
    logger.info('stop requested during startup; stopping once workers are up', { signal });
  };
  process.once('SIGTERM', () => onStop('SIGTERM'));
  process.once('SIGINT', () => onStop('SIGINT'));
  let server;
  try {
    server = await startServer(config, logger);
  } catch (err) {
    logger.error('failed to start', { err });
    return EXIT.failure;
  }
  const running = server;
  return new Promise<number>((resolve) => {
    onStop = (signal: string) => {
      running.shutdown(signal).then(
        () => resolve(0),
        (err) => {
          logger.error('shutdown failed', { err });
          resolve(1);
        },
      );
    };
    if (stopSignal !== null) onStop(stopSignal);
  });
}
