/**
 * Verifiers return results on malformed input and throw only on misuse
 * (STYLE.md: malformed input to a verifier returns a result, misuse fails loudly).
 */
import fc from 'fast-check';
import { prependField } from '../../src/chain/message-fields';
import { ChainFormatError } from '../../src/chain/result';
import { seal } from '../../src/chain/seal';
import { parseSeal, parseUserSignature } from '../../src/chain/tags';
import { verifyUser } from '../../src/chain/user-signature';
import { verifyChain } from '../../src/chain/verify-chain';
import { now, sampleMessage } from './fixtures';

const lookup = () => undefined;
const RESULTS = ['pass', 'fail', 'temperror', 'none'];

describe('misuse throws a precise error', () => {
  it.each([undefined, null, 'From: a@b\r\n\r\nx', 42, {}, [1, 2]])('verifyChain and verifyUser reject %p as a message', async (input) => {
    await expect(verifyChain(input as never, { lookup, now })).rejects.toThrow(
      new TypeError('Cannot verify: the message must be a Uint8Array'),
    );
    await expect(verifyUser(input as never, { lookup, now })).rejects.toThrow(
      new TypeError('Cannot verify: the message must be a Uint8Array'),
    );
  });

  it('seal rejects a missing chain result', async () => {
    await expect(seal(sampleMessage(), { chain: undefined } as never)).rejects.toThrow(
      'Cannot seal: options.chain must be the result of verifyChain',
    );
  });

  it('parsers reject a non-string value with ChainFormatError', () => {
    expect(() => parseSeal(42 as never)).toThrow(new ChainFormatError('malformed', 'Cannot parse seal: expected a string'));
    expect(() => parseUserSignature(undefined as never)).toThrow('Cannot parse user signature: expected a string');
  });
});

describe('malformed input gives a result, never an exception', () => {
  it('arbitrary bytes as a message', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        expect(RESULTS).toContain((await verifyChain(bytes, { lookup, now })).result);
        expect(RESULTS).toContain((await verifyUser(bytes, { lookup, now })).result);
      }),
      { numRuns: 100 },
    );
  });

  it('arbitrary SSMAX-Seal and SSMAX-User-Signature values', async () => {
    const value = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc
        .array(fc.constantFrom('v=1', 'i=1', 'i=2', 'd=a.example', 'cv=none', 'vd=', 'tt=AA', 'h=from', 'b=', ';', ' ', '\r\n ', '='), {
          maxLength: 20,
        })
        .map((parts) => parts.join('; ')),
    );
    await fc.assert(
      fc.asyncProperty(value, value, async (sealValue, userValue) => {
        const clean = (v: string) => v.replace(/\r?\n(?![ \t])/g, ' ');
        const message = prependField(
          prependField(sampleMessage(), `SSMAX-Seal:${clean(sealValue)}`),
          `SSMAX-User-Signature:${clean(userValue)}`,
        );
        const chain = await verifyChain(message, { lookup, now });
        const user = await verifyUser(message, { lookup, now });
        expect(chain.result).toBe('fail');
        expect(user.result).toBe('fail');
        expect(chain.summary).toMatch(/^ssmax-chain=fail reason="[\x20-\x7e]*"/);
        expect(chain.summary).not.toMatch(/[\r\n]/);
        expect(() => {
          try {
            parseSeal(sealValue);
          } catch (err) {
            if (!(err instanceof ChainFormatError)) throw err;
          }
        }).not.toThrow();
      }),
      { numRuns: 200 },
    );
  });
});
