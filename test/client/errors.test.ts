/**
 * Connection failures read cleanly: grpc-js's text ends with an empty "Resolution note: " and nests
 * "Error: " after "Last error:"; the client's errors keep what it says and drop the rest.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { Florence2Client, Florence2Error, UnavailableError } from 'florence2-client';
import { closedPort } from './fake-server';

describe('connection errors', () => {
  it("grpc-js's connection text: no dangling resolution note, no nested Error:", () => {
    const e = Florence2Error.fromStatus({
      code: grpc.status.UNAVAILABLE,
      details: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
    });
    assert.ok(e instanceof UnavailableError);
    assert.equal(e.details, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1');
    assert.equal(e.message, 'UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1');
    // A note that says something is kept.
    const dns = Florence2Error.fromStatus({
      code: grpc.status.UNAVAILABLE,
      details: 'Name resolution failed for target dns:nowhere.invalid:1. Resolution note: DNS resolution failed',
    });
    assert.match(dns.details, /Resolution note: DNS resolution failed$/);
  });

  it('a call to a wrong port fails with a message that ends with its cause', async () => {
    const port = await closedPort();
    const client = new Florence2Client({ address: `127.0.0.1:${port}` });
    try {
      const err = await client.modelInfo({ deadlineMs: 5_000 }).then(
        () => assert.fail('a closed port answered'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof UnavailableError, String(err));
      assert.doesNotMatch(err.message, /Resolution note|Error: connect|[:.]\s*$/);
      assert.match(err.message, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}$`));
    } finally {
      client.close();
    }
  });
});
