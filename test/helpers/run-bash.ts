/** A shell command run asynchronously (a server started by the test is a child of this process too). */
import { spawn } from 'node:child_process';

export interface BashRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` with bash in `cwd`, collecting its output. */
export function runBash(command: string, cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<BashRun> {
  return new Promise((res, rej) => {
    const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', rej);
    child.once('close', (code) => res({ code, stdout, stderr }));
  });
}
