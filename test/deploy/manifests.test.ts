/**
 * The Kubernetes manifests, rendered by `kubectl kustomize` as a cluster would get them, validated
 * against the Kubernetes and CRD schemas (kubernetes-models), and compared with the server they
 * deploy: ports, health service and paths, settings, metric names, grace periods, the image.
 * No cluster runs here; what only a cluster would show is said in deploy/README.md.
 */
import { strict as assert } from 'node:assert';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import type { IGRPCRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GRPCRoute';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load';
import { SETTINGS } from '../../src/config/schema';
import { serverPackageVersion } from '../../src/common/version';
import { hubSettings } from '../../src/hub/resolve';
import { Metrics } from '../../src/metrics/registry';
import { SERVICE_NAME } from '../../src/server/main';

const ROOT = resolve(__dirname, '../..');
const DEPLOY = join(ROOT, 'deploy');
/** The deployable kustomizations (cpu is the base as it is) and the optional objects. */
const WORKLOADS = ['base', 'overlays/cpu', 'overlays/gpu', 'overlays/multi-gpu'] as const;
const ALL = [...WORKLOADS, 'examples'] as const;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** A kubernetes-models class: its constructor takes the object, `validate()` throws on a schema violation. */
type ModelClass = new (data: never) => { validate(): void };

/**
 * The schema of every kind the manifests use, CRDs included. These packages are ES modules only, so
 * they are imported, not required. A kind missing here fails the test: it would go unvalidated.
 */
const MODELS: Record<string, () => Promise<ModelClass>> = {
  'v1/ConfigMap': async () => (await import('kubernetes-models/v1/ConfigMap')).ConfigMap,
  'v1/Service': async () => (await import('kubernetes-models/v1/Service')).Service,
  'v1/PersistentVolumeClaim': async () => (await import('kubernetes-models/v1/PersistentVolumeClaim')).PersistentVolumeClaim,
  'apps/v1/Deployment': async () => (await import('kubernetes-models/apps/v1/Deployment')).Deployment,
  'policy/v1/PodDisruptionBudget': async () => (await import('kubernetes-models/policy/v1/PodDisruptionBudget')).PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': async () =>
    (await import('kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler')).HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': async () => (await import('kubernetes-models/networking.k8s.io/v1/NetworkPolicy')).NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': async () =>
    (await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor')).ServiceMonitor,
  'keda.sh/v1alpha1/ScaledObject': async () => (await import('@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject')).ScaledObject,
  'gateway.networking.k8s.io/v1/GRPCRoute': async () =>
    (await import('@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GRPCRoute')).GRPCRoute,
};

/** `kubectl kustomize DIR`, parsed. kubectl is a CI requirement (.ci/run), never a reason to skip. */
function render(dir: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', join(DEPLOY, dir)], { encoding: 'utf8' });
  if (r.error) assert.fail(`kubectl is needed to render deploy/${dir} (.ci/run installs it): ${r.error.message}`);
  assert.equal(r.status, 0, `kubectl kustomize deploy/${dir} failed:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
}

function one<T>(objects: readonly K8sObject[], kind: string, name?: string): T {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `one ${kind}${name === undefined ? '' : ` ${name}`}, found ${found.length}`);
  return found[0] as unknown as T;
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** A CPU quantity ('4', '500m', '1.5') in cores. */
function cores(q: string | number): number {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

/** The server container's environment as the kubelet builds it: the ConfigMap, then `env`, with resource fields resolved. */
function serverEnv(objects: readonly K8sObject[], container: IContainer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    assert.ok(from.configMapRef?.name, 'envFrom names a ConfigMap');
    Object.assign(env, one<IConfigMap>(objects, 'ConfigMap', from.configMapRef.name).data);
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.resourceFieldRef) {
      const ref = e.valueFrom.resourceFieldRef;
      assert.equal(ref.containerName ?? container.name, container.name, `${e.name} reads its own container's resources`);
      const [kind, resource] = ref.resource.split('.') as ['limits' | 'requests', string];
      const quantity = container.resources?.[kind]?.[resource];
      assert.ok(quantity !== undefined, `${e.name}: ${ref.resource} is set`);
      // The kubelet rounds a resource field up to whole divisors.
      env[e.name] = String(Math.ceil(cores(quantity) / cores(ref.divisor ?? '1')));
    } else assert.fail(`${e.name}: a value source this test does not resolve`);
  }
  return env;
}

describe('deploy/ manifests', function () {
  this.timeout(120_000);
  const rendered = new Map<string, K8sObject[]>();
  const workloads = () => WORKLOADS.map((w) => [w, rendered.get(w) ?? []] as const);
  const serverOf = (objects: readonly K8sObject[]) => {
    const spec = one<IDeployment>(objects, 'Deployment', 'florence2-server').spec;
    assert.ok(spec?.template.spec);
    const pod = spec.template.spec;
    const server = pod.containers.find((c) => c.name === 'server');
    assert.ok(server, 'a container named server');
    return { spec, pod, server, labels: spec.template.metadata?.labels };
  };

  before(() => {
    for (const dir of ALL) rendered.set(dir, render(dir));
  });

  it('renders every kustomization under deploy/, each a complete set of objects', () => {
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else if (e.name === 'kustomization.yaml') found.push(relative(DEPLOY, dir));
      }
    };
    walk(DEPLOY);
    assert.deepEqual(found.sort(), [...ALL].sort(), 'every kustomization is rendered and checked here');
    for (const [dir, objects] of workloads()) {
      const kinds = objects.map((o) => o.kind).sort();
      for (const k of [
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'NetworkPolicy',
        'PersistentVolumeClaim',
        'PodDisruptionBudget',
        'Service',
        'ServiceMonitor',
      ])
        assert.ok(kinds.includes(k), `${dir} has a ${k}`);
      assert.equal(objects.filter((o) => o.kind === 'Service').length, 2, `${dir}: a headless and a ClusterIP Service`);
    }
    assert.deepEqual(rendered.get('overlays/cpu'), rendered.get('base'), 'the cpu overlay is the base as it is');
  });

  it('validates every rendered object against its schema, the CRDs (ServiceMonitor, ScaledObject, GRPCRoute) included', async () => {
    let validated = 0;
    for (const [dir, objects] of rendered) {
      for (const o of objects) {
        const load = MODELS[`${o.apiVersion}/${o.kind}`];
        assert.ok(load, `${dir}: no schema for ${o.apiVersion} ${o.kind}; add it to MODELS`);
        const Model = await load();
        assert.doesNotThrow(() => new Model(o as never).validate(), `${dir}: ${o.kind} ${o.metadata.name}`);
        validated++;
      }
    }
    assert.equal(validated, 4 * 11 + 2);
    // The validation is live: the same objects with one field wrong are refused.
    const base = rendered.get('base') ?? [];
    const Deployment = await MODELS['apps/v1/Deployment']();
    const deployment = structuredClone(one<IDeployment>(base, 'Deployment'));
    (deployment.spec as { replicas: unknown }).replicas = 'two';
    assert.throws(() => new Deployment(deployment as never).validate(), /replicas/);
    const ServiceMonitor = await MODELS['monitoring.coreos.com/v1/ServiceMonitor']();
    const monitor = structuredClone(one<IServiceMonitor>(base, 'ServiceMonitor'));
    (monitor.spec as { endpoints: unknown }).endpoints = 'metrics';
    assert.throws(() => new ServiceMonitor(monitor as never).validate(), /endpoints/);
  });

  it('ports, probes and paths are those the server serves: gRPC 50051 with the health of its service, metrics 9464 with /livez', () => {
    const defaults = loadConfig(['--model', 'base'], {});
    for (const [dir, objects] of workloads()) {
      const { server } = serverOf(objects);
      const env = serverEnv(objects, server);
      const config = loadConfig([], env);
      const port = (name: string) => server.ports?.find((p) => p.name === name)?.containerPort;
      assert.equal(port('grpc'), config.port, `${dir}: the grpc port is the server's --port`);
      assert.equal(port('metrics'), config.metricsPort, `${dir}: the metrics port is the server's --metrics-port`);
      assert.equal(config.port, defaults.port);
      for (const probe of [server.startupProbe, server.readinessProbe]) {
        assert.equal(probe?.grpc?.port, config.port, `${dir}: gRPC probes go to the gRPC port`);
        // The service the server turns SERVING once warm, NOT_SERVING on drain.
        assert.equal(probe.grpc.service, SERVICE_NAME);
      }
      // Liveness must not follow the drain's NOT_SERVING: the process endpoint on the metrics port.
      assert.equal(server.livenessProbe?.httpGet?.path, '/livez');
      assert.equal(server.livenessProbe.httpGet.port, 'metrics');
    }
  });

  it('every FLORENCE2_* variable is a real setting, and the server configuration loads from each overlay', () => {
    const known = new Set(SETTINGS.map((s) => s.env));
    for (const [dir, objects] of workloads()) {
      const { pod, server } = serverOf(objects);
      for (const c of [...(pod.initContainers ?? []), server]) {
        const env = serverEnv(objects, c);
        for (const name of Object.keys(env)) {
          if (name.startsWith('FLORENCE2_')) assert.ok(known.has(name), `${dir}: ${c.name} sets ${name}, which no setting reads`);
        }
      }
      const env = serverEnv(objects, server);
      const config = loadConfig([], env); // throws a ConfigError naming each bad variable
      const limits = server.resources?.limits ?? {};
      const requests = server.resources?.requests ?? {};
      assert.deepEqual(
        requests,
        Object.fromEntries(Object.entries(limits).filter(([k]) => k !== 'nvidia.com/gpu')),
        `${dir}: requests = limits`,
      );
      assert.ok(Number.isInteger(cores(limits.cpu)), `${dir}: whole CPUs, so the threads match the limit`);
      assert.equal(config.intraOpThreads, cores(limits.cpu), `${dir}: intra-op threads follow the CPU limit`);
      const gpus = Number(limits['nvidia.com/gpu'] ?? 0);
      const cuda = config.devices.filter((d) => d.provider === 'cuda');
      assert.equal(cuda.length, gpus, `${dir}: --devices names as many GPUs as the pod is given`);
      assert.deepEqual(
        cuda.map((d) => d.deviceId),
        [...Array(gpus).keys()],
        `${dir}: the device plugin numbers a pod's GPUs from 0`,
      );
      if (gpus > 0) {
        assert.equal(pod.nodeSelector?.['nvidia.com/gpu.present'], 'true', `${dir}: scheduled on GPU nodes`);
        assert.ok(
          pod.tolerations?.some((t) => t.key === 'nvidia.com/gpu' && t.effect === 'NoSchedule'),
          `${dir}: tolerates the GPU nodes' taint`,
        );
      } else {
        assert.deepEqual(
          config.devices.map((d) => d.provider),
          ['cpu'],
        );
        assert.equal(pod.nodeSelector, undefined);
      }
    }
  });

  it('the init container pulls the model online, into the cache the offline server reads, only when it is missing', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'florence2-init-'));
    try {
      for (const [dir, objects] of workloads()) {
        const { pod, server } = serverOf(objects);
        const init = pod.initContainers?.find((c) => c.name === 'models-pull');
        assert.ok(init?.command, `${dir}: a models-pull init container`);
        assert.equal(init.image, server.image, `${dir}: the init container runs the server's image`);
        const mount = (c: IContainer) => c.volumeMounts?.find((m) => m.name === 'models');
        assert.equal(mount(init)?.mountPath, mount(server)?.mountPath);
        assert.equal(mount(init)?.readOnly ?? false, false, 'the init container writes the cache');
        assert.equal(mount(server)?.readOnly, true, 'the server only reads it');
        const serverHub = hubSettings(serverEnv(objects, server));
        assert.equal(serverHub.offline, true, `${dir}: the server never downloads`);
        assert.ok(serverHub.cacheDir.startsWith(`${mount(server)?.mountPath}/`), `${dir}: the server's hub cache is on the volume`);

        // Runs the container's script with `node` as a stand-in that records each call and its
        // environment, and finds the model cached or not.
        for (const cached of [true, false]) {
          const bin = join(tmp, `${dir.replace(/\//g, '-')}-${cached}`);
          rmSync(bin, { recursive: true, force: true });
          mkdirSync(bin, { recursive: true });
          const log = join(bin, 'calls.jsonl');
          writeFileSync(
            join(bin, 'node'),
            `#!/bin/sh\n${process.execPath} -e 'require("fs").appendFileSync(${JSON.stringify(log)}, JSON.stringify({ argv: process.argv.slice(1), env: process.env }) + "\\n")' -- "$@"\n` +
              `case " $* " in *" --offline "*) exit ${cached ? 0 : 1} ;; esac\nexit 0\n`,
          );
          chmodSync(join(bin, 'node'), 0o755);
          const command: string[] = [...init.command, ...(init.args ?? [])];
          const r: SpawnSyncReturns<string> = spawnSync(command[0], command.slice(1), {
            env: { PATH: `${bin}:/usr/bin:/bin`, ...serverEnv(objects, init) },
            encoding: 'utf8',
          });
          assert.equal(r.status, 0, `${dir}: the init script exits 0 (${r.stderr})`);
          const calls = readFileSync(log, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as { argv: string[]; env: NodeJS.ProcessEnv });
          for (const c of calls) {
            assert.equal(c.argv[0], '/app/bin/florence2.js', 'the image entry point');
            assert.deepEqual(c.argv.slice(1, 3), ['models', 'pull']);
            assert.equal(c.argv[3], serverEnv(objects, server).FLORENCE2_MODEL, 'the model the server will serve');
            assert.equal(hubSettings(c.env).cacheDir, serverHub.cacheDir, 'the cache the server reads');
          }
          assert.ok(calls[0].argv.includes('--offline'), 'first a check of the cache alone');
          if (cached) assert.equal(calls.length, 1, `${dir}: a cached model is not fetched again`);
          else {
            assert.equal(calls.length, 2, `${dir}: a missing model is pulled`);
            assert.ok(!calls[1].argv.includes('--offline'));
            assert.equal(
              hubSettings(calls[1].env).offline,
              false,
              `${dir}: the pull may use the network (FLORENCE2_OFFLINE is the server's)`,
            );
            const device = calls[1].argv[calls[1].argv.indexOf('--device') + 1];
            const expected = serverEnv(objects, server).FLORENCE2_DEVICES?.startsWith('cuda') ? 'cuda' : 'cpu';
            assert.equal(device, expected, `${dir}: auto dtypes chosen for the pod's device kind`);
          }
        }
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('the metrics the HPA, the adapter rule, KEDA and the dashboard query exist, with the labels they group by', () => {
    const registry = new Metrics().registry;
    const metrics = new Map(registry.getMetricsAsArray().map((m) => [m.name, m]));
    /** Labels Prometheus adds to every scraped series (ServiceMonitor targets), and the histogram bucket label. */
    const targetLabels = new Set(['pod', 'namespace', 'instance', 'job', 'service', 'container', 'endpoint', 'le']);
    /** Series from other exporters a dashboard may show next to ours. */
    const external = /^kube_/;
    const check = (where: string, expr: string) => {
      const names = [...expr.matchAll(/\b((?:florence2|process|nodejs|kube)_[a-z0-9_]+)/g)].map((m) => m[1]);
      assert.ok(names.length > 0, `${where}: queries a metric (${expr})`);
      for (const full of names) {
        if (external.test(full)) continue;
        const name = metrics.has(full) ? full : full.replace(/_(bucket|sum|count)$/, '');
        const metric = metrics.get(name);
        assert.ok(metric, `${where}: ${full} is not a metric of the server`);
        if (name !== full) assert.equal((metric as { type?: unknown }).type, 'histogram', `${where}: ${full} of a histogram`);
      }
      const ours = new Set(names.flatMap((n) => [...metrics.keys()].filter((m) => n === m || n.startsWith(`${m}_`))));
      const labels = new Set([...ours].flatMap((n) => (metrics.get(n) as { labelNames?: string[] }).labelNames ?? []));
      for (const m of expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const label of m[1].split(',').map((l) => l.trim())) {
          if (!names.some((n) => external.test(n)))
            assert.ok(
              labels.has(label) || targetLabels.has(label),
              `${where}: groups by ${label}, a label none of ${[...ours].join(', ')} has`,
            );
        }
      }
      return names;
    };

    const base = rendered.get('base') ?? [];
    const hpa = one<IHorizontalPodAutoscaler>(base, 'HorizontalPodAutoscaler');
    const hpaMetric = hpa.spec?.metrics?.[0]?.pods?.metric.name;
    assert.ok(hpaMetric, 'the HPA scales on a pods metric');
    check('HPA', hpaMetric);
    const adapter = one<IConfigMap>(base, 'ConfigMap', 'florence2-prometheus-adapter-rules').data?.['config.yaml'] ?? '';
    const rules = (parseAllDocuments(adapter)[0].toJS() as { rules: { seriesQuery: string; name: { as: string }; metricsQuery: string }[] })
      .rules;
    assert.ok(
      rules.some((r) => r.name.as === hpaMetric),
      'the adapter serves the metric the HPA asks for',
    );
    for (const r of rules) check('adapter rule', r.seriesQuery);
    const keda = one<IScaledObject>(rendered.get('examples') ?? [], 'ScaledObject');
    for (const t of keda.spec.triggers) check('KEDA trigger', t.metadata.query ?? '');
    const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'base/dashboard.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const queried = new Set<string>();
    for (const p of dashboard.panels)
      for (const t of p.targets ?? []) for (const n of check(`dashboard "${p.title}"`, t.expr)) queried.add(n);
    for (const n of [
      'florence2_requests_total',
      'florence2_request_duration_seconds_bucket',
      'florence2_queued_requests',
      'florence2_batch_size_requests_bucket',
      'florence2_worker_busy_ratio',
      'florence2_worker_restarts_total',
    ])
      assert.ok(queried.has(n), `the dashboard shows ${n}`);
    // The dashboard ConfigMap carries the same JSON.
    const cm = one<IConfigMap>(base, 'ConfigMap', 'florence2-dashboard');
    assert.deepEqual(JSON.parse(cm.data?.['florence2-dashboard.json'] ?? ''), dashboard);
    assert.equal(cm.metadata?.labels?.grafana_dashboard, '1');
  });

  it('the termination grace is longer than the drain grace plus preStop', () => {
    for (const [dir, objects] of workloads()) {
      const { pod, server } = serverOf(objects);
      const config = loadConfig([], serverEnv(objects, server));
      const command = server.lifecycle?.preStop?.exec?.command;
      assert.ok(command && command[0] === 'sleep', `${dir}: preStop sleeps while endpoints drop the pod`);
      const preStopS = Number(command[1]);
      assert.ok(preStopS > 0);
      const grace = pod.terminationGracePeriodSeconds ?? 30;
      assert.ok(
        grace > config.shutdownGraceMs / 1000 + preStopS,
        `${dir}: ${grace} s > ${config.shutdownGraceMs / 1000} s drain + ${preStopS} s preStop`,
      );
    }
  });

  it('connections age out, so balancing clients find new pods, and the grace after the age cuts no unary call', () => {
    for (const [dir, objects] of workloads()) {
      const config = loadConfig([], serverEnv(objects, serverOf(objects).server));
      assert.ok(config.maxConnectionAgeMs > 0, `${dir}: a maximum connection age (FLORENCE2_MAX_CONNECTION_AGE_MS)`);
      // 0 leaves the calls on an aged connection to their end; otherwise no unary call may outlive it.
      const grace = config.maxConnectionAgeGraceMs === 0 ? Infinity : config.maxConnectionAgeGraceMs;
      const longestCall = config.maxRequestMs === 0 ? Infinity : config.maxRequestMs;
      assert.ok(grace >= longestCall, `${dir}: the grace (${grace} ms) covers the longest request (${longestCall} ms)`);
    }
  });

  it('Services, the ServiceMonitor, the NetworkPolicy, the PDB, the autoscalers and the route select the server and its ports', () => {
    for (const [dir, objects] of workloads()) {
      const { spec, pod, server, labels } = serverOf(objects);
      assert.ok(selects(spec.selector.matchLabels, labels), `${dir}: the Deployment selects its pods`);
      const portNames = new Set((server.ports ?? []).map((p) => p.name));
      const services = objects.filter((o) => o.kind === 'Service') as unknown as IService[];
      for (const s of services) {
        assert.ok(selects(s.spec?.selector, labels), `${dir}: Service ${s.metadata?.name} selects the pods`);
        for (const p of s.spec?.ports ?? [])
          assert.ok(portNames.has(String(p.targetPort)), `${dir}: ${s.metadata?.name} targets port ${String(p.targetPort)}`);
      }
      const headless = services.find((s) => s.spec?.clusterIP === 'None');
      assert.ok(headless, `${dir}: a headless Service for client-side balancing`);
      assert.ok(
        services.some((s) => s.spec?.type === 'ClusterIP' && s.spec.clusterIP === undefined),
        `${dir}: a ClusterIP Service`,
      );
      const monitor = one<IServiceMonitor>(objects, 'ServiceMonitor');
      const monitored = services.filter((s) => selects(monitor.spec.selector.matchLabels, s.metadata?.labels));
      for (const e of monitor.spec.endpoints ?? []) {
        assert.equal(e.path, '/metrics');
        assert.ok(
          monitored.some((s) => s.spec?.ports?.some((p) => p.name === e.port)),
          `${dir}: a monitored Service has port ${e.port}`,
        );
      }
      const policy = one<INetworkPolicy>(objects, 'NetworkPolicy');
      assert.ok(selects(policy.spec?.podSelector?.matchLabels, labels));
      const allowed = (policy.spec?.ingress ?? []).flatMap((r) => (r.ports ?? []).map((p) => ({ port: String(p.port), from: r.from })));
      assert.deepEqual(allowed.map((a) => a.port).sort(), ['grpc', 'metrics'], `${dir}: only the gRPC and metrics ports are open`);
      assert.equal(allowed.find((a) => a.port === 'grpc')?.from, undefined, 'gRPC from any client');
      assert.deepEqual(allowed.find((a) => a.port === 'metrics')?.from, [
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
      ]);
      const pdb = one<IPodDisruptionBudget>(objects, 'PodDisruptionBudget');
      assert.ok(selects(pdb.spec?.selector?.matchLabels, labels));
      const hpa = one<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler');
      assert.deepEqual(hpa.spec?.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'florence2-server' });
      assert.ok((hpa.spec?.minReplicas ?? 1) >= 2, 'at least two pods, so that a drain or a disruption leaves one serving');
      // Every container runs as non-root on a read-only root filesystem.
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      for (const c of [...(pod.initContainers ?? []), server]) {
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${dir}: ${c.name} has a read-only root`);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        assert.ok(
          c.volumeMounts?.some((m) => m.mountPath === '/tmp'),
          `${dir}: ${c.name} has a writable /tmp`,
        );
      }
      const claim = pod.volumes?.find((v) => v.name === 'models')?.persistentVolumeClaim?.claimName;
      assert.ok(
        claim && objects.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === claim),
        `${dir}: the model claim is defined`,
      );
    }
    const examples = rendered.get('examples') ?? [];
    const base = rendered.get('base') ?? [];
    const keda = one<IScaledObject>(examples, 'ScaledObject');
    assert.equal(keda.spec.scaleTargetRef.name, one<IDeployment>(base, 'Deployment').metadata?.name);
    const route = one<IGRPCRoute>(examples, 'GRPCRoute');
    const backends = (route.spec?.rules ?? []).flatMap((r) => r.backendRefs ?? []);
    const clusterIp = one<IService>(base, 'Service', 'florence2-server');
    for (const b of backends) {
      assert.equal(b.name, clusterIp.metadata?.name, 'the route balances over the ClusterIP Service');
      assert.ok(clusterIp.spec?.ports?.some((p) => p.port === b.port && p.name === 'grpc'));
    }
    assert.ok((route.spec?.rules ?? []).some((r) => r.matches?.some((m) => m.method?.service === SERVICE_NAME)));
  });

  it('the images are the ones deploy/docker builds, tagged with the package version', () => {
    const version = serverPackageVersion();
    const tags: Record<(typeof WORKLOADS)[number], string> = {
      base: version,
      'overlays/cpu': version,
      'overlays/gpu': `${version}-cuda12`,
      'overlays/multi-gpu': `${version}-cuda12`,
    };
    for (const [dir, objects] of workloads()) {
      const { pod } = serverOf(objects);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers])
        assert.equal(c.image, `florence2-server:${tags[dir]}`, `${dir}: ${c.name}`);
    }
    const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
    for (const tag of new Set(Object.values(tags)))
      assert.ok(readme.includes(`florence2-server:${tag}`), `deploy/README.md says how florence2-server:${tag} is built`);
  });
});
