/** Florence-2 models from the Hugging Face Hub: names, the standard Hugging Face hub cache, and downloads. */
export { resolveModel, hubSettings, DEFAULT_ENDPOINT } from './resolve';
export type { ResolveSpec, ResolvedModel, DownloadProgress, HubSettings } from './resolve';
export { listModels, modelPath, removeModel, hubCacheDir, snapshotDir, snapshotOf } from './cache';
export type { CachedModel } from './cache';
export {
  autoDtypes,
  defaultDtypes,
  folderDtypes,
  parseDtypeArg,
  dtypesFrom,
  filesToFetch,
  onnxPath,
  REQUIRED_FILES,
  OPTIONAL_FILES,
} from './dtypes';
export type { DtypeByModule } from './dtypes';
export { MODEL_ALIASES, DEFAULT_MODEL, DEFAULT_REVISION, repoId, aliasOf } from './names';
export { HubError, OfflineError, HubHttpError, ChecksumError, LockedError, NetworkError } from './errors';
