// ESLint flat config: type-aware typescript-eslint rules, Prettier owning the layout, and the
// architecture's import boundaries (test/unit/boundaries.test.ts plants violations to prove they hold).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

/** Import boundaries, one block per folder; `patterns` match module specifiers. */
const ORT_ONLY_IN_RUNTIME = { name: 'onnxruntime-node', message: 'Only src/runtime talks to onnxruntime-node (the ModelBackend seam).' };
const NO_DEV_TOOLING = {
  group: ['**/tools/**', '**/bench/**', '**/test/**'],
  message: 'Product code does not import dev tooling, benchmarks or tests.',
};

const CLIENT_BY_NAME = {
  group: ['**/packages/**'],
  message: 'Import the client package by its name (florence2-client), as an installed server does.',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'packages/client/src/generated/**', 'packages/*/dist/**', '.cache/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Unused names fail tsc already (noUnusedLocals); args prefixed with _ are intentional.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Promise-returning callbacks passed to Node/grpc event emitters are handled inside.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      // An async function that returns a promise without awaiting is still clearer than a hand-made one.
      '@typescript-eslint/require-await': 'off',
      eqeqeq: ['error', 'always'],
      'no-restricted-imports': ['error', { paths: [ORT_ONLY_IN_RUNTIME], patterns: [NO_DEV_TOOLING, CLIENT_BY_NAME] }],
    },
  },
  {
    files: ['src/runtime/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NO_DEV_TOOLING, CLIENT_BY_NAME] }] },
  },
  {
    files: ['src/florence/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [ORT_ONLY_IN_RUNTIME, { name: 'piscina', message: 'src/florence is the pure model pipeline: no worker pools.' }],
          patterns: [
            NO_DEV_TOOLING,
            CLIENT_BY_NAME,
            { group: ['@grpc/*', 'grpc-health-check'], message: 'src/florence is the pure model pipeline: no gRPC.' },
            {
              group: ['**/server/**', '**/worker/**', '**/runtime/**', '**/generated/**'],
              message: 'src/florence depends on nothing above it.',
            },
            {
              regex: '^florence2-client(?!/catalogue$)',
              message: 'src/florence takes only the task catalogue (plain data) from the client package.',
            },
          ],
        },
      ],
    },
  },
  {
    // The client package installs on its own: it imports itself and its declared dependencies only.
    files: ['packages/client/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ORT_ONLY_IN_RUNTIME,
            { name: 'piscina', message: 'The client imports no server code.' },
            { name: 'sharp', message: 'The client needs no image library (drawing lives in the server package, src/visuals).' },
            { name: 'prom-client', message: 'The client imports no server code.' },
            { name: 'florence2-server', message: 'The server depends on the client, not the reverse.' },
          ],
          patterns: [
            NO_DEV_TOOLING,
            {
              group: ['../**', 'florence2-server/*'],
              message: 'The client package imports nothing outside itself (it is installed alone).',
            },
          ],
        },
      ],
    },
  },
  {
    // Tests, benchmarks and tools are harnesses: they may reach anything, onnxruntime included.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // Tests read untyped data on purpose (JSON log lines, Python output, dynamic gRPC clients): the
    // assertion on the value is the check, so the no-unsafe-* family would only add casts.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // Assertion messages print arrays as they come (`1,2,3`).
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowArray: true }],
    },
  },
  { files: ['**/*.mjs', '**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    // bin/ is plain CommonJS run by Node.
    files: ['**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', process: 'readonly', module: 'writable', __dirname: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettier,
);
