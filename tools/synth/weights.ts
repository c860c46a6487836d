/** Weight sources: seeded random weights, optionally with some tensors replaced (scripted models). */
import { type WeightInit, type WeightSource } from './layers';
import { Rng } from './rng';

/** Every tensor draws from its own stream seeded by (seed, name), so any tensor can be regenerated alone. */
export class RandomWeights implements WeightSource {
  constructor(readonly seed: number) {}

  tensor(name: string, dims: number[], init: WeightInit): () => Float32Array {
    const n = dims.reduce((a, b) => a * b, 1);
    return () => {
      if (init.kind === 'const') return new Float32Array(n).fill(init.value);
      return new Rng(this.seed, name).normalArray(n, init.std, init.mean ?? 0);
    };
  }
}

/** Random weights except the named tensors, whose data is given. */
export class OverriddenWeights implements WeightSource {
  constructor(
    private readonly base: WeightSource,
    private readonly overrides: ReadonlyMap<string, () => Float32Array>,
  ) {}

  tensor(name: string, dims: number[], init: WeightInit): () => Float32Array {
    return this.overrides.get(name) ?? this.base.tensor(name, dims, init);
  }
}
