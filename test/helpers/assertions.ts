/** Assertions several test files share. */
import { strict as assert } from 'node:assert';

/** Same length and every number within `tol`. */
export function near(actual: number[], expected: number[], tol = 1e-3): void {
  assert.equal(actual.length, expected.length, `${actual} vs ${expected}`);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tol, `${actual} vs ${expected}`));
}

/** Awaits `p`, which must reject with an instance of `type`; returns the error. */
export async function rejects<E extends Error>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    return err;
  }
  assert.fail(`expected ${type.name}, the call succeeded`);
}
