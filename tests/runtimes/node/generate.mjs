// Loads an exported model folder with transformers.js, offline, the way its README snippet
// does, and prints one JSON line with what it produced:
// {"prompt_ids": [...], "generated_ids": [...], "texts": [{"ids": [...], "decoded": "..."}]}
//
// usage: node generate.mjs MODEL_FOLDER REQUEST_JSON_FILE
// request: {"prompt": "<rendered chat prompt>", "max_new_tokens": 32, "texts": ["...", ...]}
// The prompt is tokenized here (so its ids check the tokenizer too) and answered greedily;
// each text is encoded and decoded to compare the tokenizer with the `tokenizers` library.
import { readFileSync } from "node:fs";
import path from "node:path";

import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";

const [folder, requestFile] = process.argv.slice(2);
const request = JSON.parse(readFileSync(requestFile, "utf8"));

env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(folder));
const modelId = path.basename(path.resolve(folder));

const tokenizer = await AutoTokenizer.from_pretrained(modelId);
const model = await AutoModelForCausalLM.from_pretrained(modelId, { device: "cpu" });

const prompt = tokenizer(request.prompt, { add_special_tokens: false });
const promptIds = Array.from(prompt.input_ids.data, Number);
const output = await model.generate({
  ...prompt,
  max_new_tokens: request.max_new_tokens,
  do_sample: false,
  repetition_penalty: 1.0,
});
const generated = Array.from(output.data, Number).slice(promptIds.length);

const texts = request.texts.map((text) => {
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  return { ids, decoded: tokenizer.decode(ids) };
});
process.stdout.write(
  JSON.stringify({ prompt_ids: promptIds, generated_ids: generated, texts }) + "\n",
);
