/** `florence2 serve`: load and validate the configuration, start the server, stop gracefully on SIGTERM/SIGINT. */
import { ConfigError, helpText, isHelpRequested, loadConfig } from '../config/load';
import { createLogger } from '../common/logger';
import { startServer } from '../server/main';

export async function serve(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (isHelpRequested(argv)) {
    process.stdout.write(helpText());
    return 0;
  }
  let config;
  try {
    config = loadConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`florence2 serve: invalid configuration\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n\nSee florence2 serve --help.\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel });
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
    return 1;
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
