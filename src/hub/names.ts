/** Model names: the short aliases and `owner/name` repository ids. */
import { HubError } from './errors';

/** Short names of the onnx-community Florence-2 exports. */
export const MODEL_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  base: 'onnx-community/Florence-2-base',
  'base-ft': 'onnx-community/Florence-2-base-ft',
  large: 'onnx-community/Florence-2-large',
  'large-ft': 'onnx-community/Florence-2-large-ft',
});

/** The model `npm start` serves when none is configured. */
export const DEFAULT_MODEL = 'base-ft';

/** The Hub's default branch. */
export const DEFAULT_REVISION = 'main';

// The Hub's rules for ids, loosely: letters, digits, `-`, `_`, `.`; no `..` or leading/trailing `.`/`-` games
// that could escape the cache folder once mapped to a path.
const PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;

/**
 * The repository id for a model name: an alias from {@link MODEL_ALIASES} or `owner/name`.
 * Throws a HubError (a usage problem) for anything else.
 */
export function repoId(name: string): string {
  const alias = MODEL_ALIASES[name];
  if (alias !== undefined) return alias;
  const parts = name.split('/');
  if (parts.length === 2 && parts.every((p) => PART.test(p) && !p.includes('..'))) return name;
  throw new HubError(
    `unknown model ${JSON.stringify(name)}: use one of ${Object.keys(MODEL_ALIASES).join(', ')} or a Hub repository id owner/name`,
  );
}

/** The alias of a repository id, if it has one (for display). */
export function aliasOf(repo: string): string | undefined {
  return Object.keys(MODEL_ALIASES).find((a) => MODEL_ALIASES[a] === repo);
}
