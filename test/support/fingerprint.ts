/** The product fingerprints streams (Fingerprinter); tests mostly hold whole messages. */
import { Fingerprinter } from '../../src/engine/fingerprint.js';

export function fingerprint(message: Uint8Array): string {
  return new Fingerprinter().update(message).digest();
}
