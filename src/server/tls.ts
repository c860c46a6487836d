/**
 * TLS material for the gRPC port, read from files and reloaded when they change (polled) or on
 * SIGHUP, without a restart: grpc-js applies an update to new connections. With a client CA the
 * server requires and verifies client certificates (mTLS).
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { createSecureContext } from 'node:tls';
import type { experimental } from '@grpc/grpc-js';

export interface TlsFileOptions {
  certFile: string;
  keyFile: string;
  /** CA bundle that client certificates must chain to; null = no client certificates. */
  clientCaFile: string | null;
  /** How often the files are checked for changes, in milliseconds. */
  pollMs?: number;
  /** Hears a reload that failed (the material in use stays). */
  onError?: (err: Error) => void;
  /** Hears a reload that changed the material. */
  onReload?: () => void;
}

type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaListener = experimental.CaCertificateUpdateListener;

interface Material {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | null;
}

/** A grpc-js certificate provider over the files (identity and, for mTLS, the client CA). */
export class TlsFiles implements experimental.CertificateProvider {
  private material: Material;
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  private readonly files: string[];

  constructor(private readonly options: TlsFileOptions) {
    this.material = this.read();
    this.files = [options.certFile, options.keyFile, ...(options.clientCaFile ? [options.clientCaFile] : [])];
    const pollMs = options.pollMs ?? 5000;
    for (const f of this.files) watchFile(f, { interval: pollMs, persistent: false }, () => this.reloadQuietly());
  }

  get mutual(): boolean {
    return this.options.clientCaFile !== null;
  }

  /** Server credentials that follow this provider. */
  credentials(): grpc.ServerCredentials {
    // grpc-js 1.14 passes its first argument on as the identity provider and the second as the CA
    // provider, whatever their names say; this object is both, so the order cannot go wrong.
    return grpc.experimental.createCertificateProviderServerCredentials(this, this.mutual ? this : null, this.mutual);
  }

  /** The material in use, for node's TLS servers (the HTTP/JSON port); {@link addIdentityCertificateListener} hears changes. */
  secureContextOptions(): { cert: Buffer; key: Buffer; ca?: Buffer } {
    const { cert, key, ca } = this.material;
    return ca ? { cert, key, ca } : { cert, key };
  }

  /** Reads the files again; throws (keeping the material in use) when they do not form a valid key pair. Returns whether anything changed. */
  reload(): boolean {
    const next = this.read();
    const same =
      next.cert.equals(this.material.cert) &&
      next.key.equals(this.material.key) &&
      (next.ca === null ? this.material.ca === null : this.material.ca !== null && next.ca.equals(this.material.ca));
    if (same) return false;
    this.material = next;
    for (const l of this.identityListeners) l({ certificate: next.cert, privateKey: next.key });
    if (next.ca) for (const l of this.caListeners) l({ caCertificate: next.ca });
    this.options.onReload?.();
    return true;
  }

  close(): void {
    for (const f of this.files) unwatchFile(f);
  }

  // grpc-js 1.14 adds its listeners before the watcher that applies their updates: an update given
  // synchronously is lost and every connection is dropped until the next reload. So the current
  // material is given in a microtask, once the watcher is there.
  addIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.add(l);
    queueMicrotask(() => {
      if (this.identityListeners.has(l)) l({ certificate: this.material.cert, privateKey: this.material.key });
    });
  }
  removeIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.delete(l);
  }
  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    queueMicrotask(() => {
      if (this.caListeners.has(l)) l(this.material.ca ? { caCertificate: this.material.ca } : null);
    });
  }
  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }

  private reloadQuietly(): void {
    try {
      this.reload();
    } catch (err) {
      this.options.onError?.(err as Error);
    }
  }

  private read(): Material {
    const cert = readFileSync(this.options.certFile);
    const key = readFileSync(this.options.keyFile);
    const ca = this.options.clientCaFile ? readFileSync(this.options.clientCaFile) : null;
    // Fails here, with the file names, rather than on the first connection.
    try {
      createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
    } catch (err) {
      throw new Error(
        `TLS material ${this.options.certFile} / ${this.options.keyFile}${ca ? ` / ${this.options.clientCaFile}` : ''} is not usable: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return { cert, key, ca };
  }
}
