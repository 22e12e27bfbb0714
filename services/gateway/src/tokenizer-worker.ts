/**
 * Builds a tokenizer in a worker thread and hands the gateway only what counting needs
 * (`prompt-tokens.ts`): the BPE tables as typed arrays (transferred, not copied) and the
 * tokenizer.json without its vocabulary and merges. The worker then exits, and with it the
 * heap that parsing the file and building the library's Maps grew to (≈150 MB for Llama 3).
 */
import { parentPort, workerData } from "node:worker_threads";
import { Tokenizer } from "@huggingface/tokenizers";
import { buffersOf, fromModel } from "./bpe-table.ts";
import { readTokenizerFiles, skeletonOf, type BuiltTokenizer } from "./tokenizer-files.ts";

const { ref } = workerData as { ref: string };
try {
  const { json, config } = await readTokenizerFiles(ref);
  const table = fromModel(new Tokenizer(json, config).model);
  const built: BuiltTokenizer = { table, skeleton: table ? skeletonOf(json) : null, config };
  parentPort!.postMessage(built, table ? buffersOf(table) : []);
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
}
