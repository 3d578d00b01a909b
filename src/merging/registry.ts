// The merge methods by mergekit's `merge_method` name (consensus and tsv are not in mergekit; their
// names are the TALL-masks and TSV-Merge papers'). The file runner, the CLI and mk.mergeTensors look methods up here.
import type { MethodSpec } from './types.ts';
import { TASK_ARITHMETIC_METHODS } from './methods/task-arithmetic.ts';
import { SCE } from './methods/sce.ts';
import { CONSENSUS } from './methods/consensus.ts';
import { INTERPOLATION_METHODS } from './methods/interpolation.ts';
import { PASSTHROUGH } from './methods/passthrough.ts';
import { SELECTION_METHODS } from './methods/selection.ts';
import { TSV } from './methods/tsv.ts';

export const METHODS: Record<string, MethodSpec> = {
  ...TASK_ARITHMETIC_METHODS,
  ...INTERPOLATION_METHODS,
  ...SELECTION_METHODS,
  sce: SCE,
  consensus: CONSENSUS,
  passthrough: PASSTHROUGH,
  tsv: TSV,
};
