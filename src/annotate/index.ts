/**
 * Florence-2 auto-annotation: images in, a training dataset out (YOLO / YOLO-seg labels with
 * `data.yaml`, COCO JSON, drawings). Entry point: {@link AutoAnnotator}; the CLI is `florence2 annotate`.
 */
export { AutoAnnotator, AnnotateUsageError, OUTPUT_FORMATS } from './annotator';
export type {
  AutoAnnotatorOptions,
  AnnotateOptions,
  AnnotationProgress,
  AnnotationFailure,
  AnnotationSummary,
  OutputFormat,
} from './annotator';
export type {
  AnnotationBackend,
  BackendRequest,
  BackendResult,
  BackendRunOptions,
  ImageRecord,
  Instance,
  BoxTuple,
  ImageSize,
  Split,
} from './types';
export { EmbeddedBackend, createRemoteBackend, RemoteBackendUnavailable, resolveModelDir, ModelNotFoundError } from './backends';
export type { EmbeddedBackendOptions, RemoteBackendOptions } from './backends';
export { ClassMap, normalizePhrase, singularCandidates } from './classes';
export { resolveInputs, globToRegExp, isGlob, IMAGE_EXTENSIONS, InputError } from './inputs';
export type { InputImage, IgnoredInput, ResolvedInputs, ResolveOptions } from './inputs';
export { DETECTION_MODES, SEGMENTATION_SOURCES, detectionPrompts, parseDetections, selectDetections } from './prompting';
export type { DetectionMode, SegmentationSource, PlannedPrompt, Detection, DetectionFilter } from './prompting';
export {
  Dataset,
  DatasetError,
  STATE_DIR,
  assignSplits,
  dataYamlText,
  settleSplits,
  yamlFolders,
  yamlScalar,
  writeDatasetFiles,
} from './dataset';
export type { YamlFolders } from './dataset';
export type { DatasetSettings } from './dataset';
export { yoloLabelText, yoloBoxLine, yoloPolygonLine } from './formats/yolo';
export type { YoloKind } from './formats/yolo';
export { buildCoco, cocoJsonText } from './formats/coco';
export type { CocoDataset, CocoImage, CocoAnnotation, CocoCategory } from './formats/coco';
export { renderVisual, visualInstances } from './visuals';
