/**
 * The probe and metrics endpoint, on its own HTTP port so Kubernetes probes and Prometheus scrapes
 * never compete with gRPC traffic: GET /metrics, /livez, /readyz.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './registry';

/** Options for {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** The metrics to expose on /metrics. */
  metrics: Metrics;
  /** Address to bind, e.g. `0.0.0.0` or `127.0.0.1`. */
  host: string;
  /** Port to bind; 0 picks a free port. */
  port: number;
  /** Readiness: /readyz answers 200 when true, 503 otherwise (e.g. while warming up or draining). */
  isReady: () => boolean;
  /** Liveness: /livez answers 200 when true (default: always), 503 otherwise. */
  isLive?: () => boolean;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The bound port. */
  port: number;
  /** Stops listening and closes open connections; resolves when closed. Idempotent. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

/** Starts the HTTP endpoint; rejects if the port cannot be bound. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { metrics, isReady } = options;
  const isLive = options.isLive ?? (() => true);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/livez' && path !== '/readyz') return send(res, 404, 'not found\n');
    if (req.method !== 'GET') return send(res, 405, 'method not allowed\n', { Allow: 'GET' });
    if (path === '/livez') return isLive() ? send(res, 200, 'ok') : send(res, 503, 'not live');
    if (path === '/readyz') return isReady() ? send(res, 200, 'ok') : send(res, 503, 'not ready');
    const text = await metrics.metricsText();
    send(res, 200, text, { 'Content-Type': metrics.contentType });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, `metrics collection failed: ${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void =>
      reject(new Error(`metrics endpoint: cannot listen on ${options.host}:${options.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  let closing: Promise<void> | null = null;
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections from a scraper would otherwise hold close() open until they time out.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
