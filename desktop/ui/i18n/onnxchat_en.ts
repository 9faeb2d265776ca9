<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="en">
<context>
    <name>Banner</name>
    <message>
        <source>Dismiss</source>
        <translation>Dismiss</translation>
    </message>
</context>
<context>
    <name>ChatView</name>
    <message>
        <source>Conversation</source>
        <translation>Conversation</translation>
    </message>
    <message>
        <source>Show earlier messages</source>
        <translation>Show earlier messages</translation>
    </message>
    <message numerus="yes">
        <source>Show earlier messages (%n more)</source>
        <translation>
            <numerusform>Show earlier messages (%n more)</numerusform>
            <numerusform>Show earlier messages (%n more)</numerusform>
        </translation>
    </message>
    <message>
        <source>Chatting with %1.</source>
        <translation>Chatting with %1.</translation>
    </message>
    <message>
        <source>No model is loaded yet.</source>
        <translation>No model is loaded yet.</translation>
    </message>
    <message>
        <source>Type a message below. Enter sends, Shift+Enter starts a new line.</source>
        <translation>Type a message below. Enter sends, Shift+Enter starts a new line.</translation>
    </message>
</context>
<context>
    <name>CodeBlock</name>
    <message>
        <source>Copy code</source>
        <translation>Copy code</translation>
    </message>
    <message>
        <source>Copy this code block to the clipboard</source>
        <translation>Copy this code block to the clipboard</translation>
    </message>
    <message>
        <source>Code</source>
        <translation>Code</translation>
    </message>
    <message>
        <source>code</source>
        <translation>code</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>Copied</translation>
    </message>
</context>
<context>
    <name>Composer</name>
    <message>
        <source>Show</source>
        <translation>Show</translation>
    </message>
    <message>
        <source>Read the pasted text</source>
        <translation>Read the pasted text</translation>
    </message>
    <message>
        <source>Remove</source>
        <translation>Remove</translation>
    </message>
    <message>
        <source>Leave the pasted text out of the message</source>
        <translation>Leave the pasted text out of the message</translation>
    </message>
    <message>
        <source>Message — Enter to send, Shift+Enter for a new line</source>
        <translation>Message — Enter to send, Shift+Enter for a new line</translation>
    </message>
    <message>
        <source>Message input</source>
        <translation>Message input</translation>
    </message>
    <message>
        <source>Send</source>
        <translation>Send</translation>
    </message>
    <message>
        <source>Send message</source>
        <translation>Send message</translation>
    </message>
    <message>
        <source>Send (Enter)</source>
        <translation>Send (Enter)</translation>
    </message>
    <message>
        <source>Stop</source>
        <translation>Stop</translation>
    </message>
    <message>
        <source>Stop generating</source>
        <translation>Stop generating</translation>
    </message>
    <message>
        <source>Stop the reply (Esc)</source>
        <translation>Stop the reply (Esc)</translation>
    </message>
    <message>
        <source>Pasted text: %1 characters</source>
        <translation>Pasted text: %1 characters</translation>
    </message>
</context>
<context>
    <name>ExportDialog</name>
    <message>
        <source>Prepare a model</source>
        <translation>Prepare a model</translation>
    </message>
    <message>
        <source>The export step is not installed in this copy of OnnxChat. It converts a model to the ONNX format the app runs, and needs PyTorch and Optimum. Install it with:</source>
        <translation>The export step is not installed in this copy of OnnxChat. It converts a model to the ONNX format the app runs, and needs PyTorch and Optimum. Install it with:</translation>
    </message>
    <message>
        <source>Install command</source>
        <translation>Install command</translation>
    </message>
    <message>
        <source>Then open this dialog again, or run “onnxchat export default” in a terminal.</source>
        <translation>Then open this dialog again, or run “onnxchat export default” in a terminal.</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>Close</translation>
    </message>
    <message>
        <source>Convert a model to an OnnxChat model folder. The result is checked against the original before it is kept.</source>
        <translation>Convert a model to an OnnxChat model folder. The result is checked against the original before it is kept.</translation>
    </message>
    <message>
        <source>Source</source>
        <translation>Source</translation>
    </message>
    <message>
        <source>The bundled default model (SmolLM2-135M-Instruct)</source>
        <translation>The bundled default model (SmolLM2-135M-Instruct)</translation>
    </message>
    <message>
        <source>A Hugging Face model folder</source>
        <translation>A Hugging Face model folder</translation>
    </message>
    <message>
        <source>A .gguf file</source>
        <translation>A .gguf file</translation>
    </message>
    <message>
        <source>Model folder</source>
        <translation>Model folder</translation>
    </message>
    <message>
        <source>Folder with config.json and weights</source>
        <translation>Folder with config.json and weights</translation>
    </message>
    <message>
        <source>GGUF file</source>
        <translation>GGUF file</translation>
    </message>
    <message>
        <source>Path to a .gguf file</source>
        <translation>Path to a .gguf file</translation>
    </message>
    <message>
        <source>Browse…</source>
        <translation>Browse…</translation>
    </message>
    <message>
        <source>Choose a model folder</source>
        <translation>Choose a model folder</translation>
    </message>
    <message>
        <source>Choose a GGUF file</source>
        <translation>Choose a GGUF file</translation>
    </message>
    <message>
        <source>Or drop a .gguf file or a model folder on this window.</source>
        <translation>Or drop a .gguf file or a model folder on this window.</translation>
    </message>
    <message>
        <source>Quantization</source>
        <translation>Quantization</translation>
    </message>
    <message>
        <source>int8 — 8-bit weights, near-lossless, loads in every runtime</source>
        <translation>int8 — 8-bit weights, near-lossless, loads in every runtime</translation>
    </message>
    <message>
        <source>auto — the fastest recipe that passes the quality gate (recommended)</source>
        <translation>auto — the fastest recipe that passes the quality gate (recommended)</translation>
    </message>
    <message>
        <source>q4-gguf — a GGUF file&apos;s own quantized blocks, carried exactly (4-bit types as 4-bit, wider ones as 8-bit), fused graph, fastest</source>
        <translation>q4-gguf — a GGUF file&apos;s own quantized blocks, carried exactly (4-bit types as 4-bit, wider ones as 8-bit), fused graph, fastest</translation>
    </message>
    <message>
        <source>int8-fused — 8-bit weights in the fused graph, fast</source>
        <translation>int8-fused — 8-bit weights in the fused graph, fast</translation>
    </message>
    <message>
        <source>fp32-fused — full-precision weights in the fused graph, exact, 4× the size of int8</source>
        <translation>fp32-fused — full-precision weights in the fused graph, exact, 4× the size of int8</translation>
    </message>
    <message>
        <source>int4 — 4-bit weights, smaller and faster, some quality loss</source>
        <translation>int4 — 4-bit weights, smaller and faster, some quality loss</translation>
    </message>
    <message>
        <source>fp32 — no quantization, largest</source>
        <translation>fp32 — no quantization, largest</translation>
    </message>
    <message>
        <source>Model name</source>
        <translation>Model name</translation>
    </message>
    <message>
        <source>Save to folder</source>
        <translation>Save to folder</translation>
    </message>
    <message>
        <source>Choose where to save</source>
        <translation>Choose where to save</translation>
    </message>
    <message>
        <source>Save to</source>
        <translation>Save to</translation>
    </message>
    <message>
        <source>Replace a model folder of the same name</source>
        <translation>Replace a model folder of the same name</translation>
    </message>
    <message>
        <source>Export progress</source>
        <translation>Export progress</translation>
    </message>
    <message>
        <source>Export stages</source>
        <translation>Export stages</translation>
    </message>
    <message>
        <source>Ready. An export of the default model takes about a minute.</source>
        <translation>Ready. An export of the default model takes about a minute.</translation>
    </message>
    <message>
        <source>Show details</source>
        <translation>Show details</translation>
    </message>
    <message>
        <source>Export log</source>
        <translation>Export log</translation>
    </message>
    <message>
        <source>Validation report</source>
        <translation>Validation report</translation>
    </message>
    <message>
        <source>Export</source>
        <translation>Export</translation>
    </message>
    <message>
        <source>Stop</source>
        <translation>Stop</translation>
    </message>
    <message>
        <source>Use this model</source>
        <translation>Use this model</translation>
    </message>
    <message>
        <source>Starting…</source>
        <translation>Starting…</translation>
    </message>
    <message>
        <source>Stopping…</source>
        <translation>Stopping…</translation>
    </message>
    <message>
        <source>A model&apos;s name may use up to 100 ASCII letters, digits, “.”, “_” and “-”, starting with a letter or digit.</source>
        <translation>A model&apos;s name may use up to 100 ASCII letters, digits, “.”, “_” and “-”, starting with a letter or digit.</translation>
    </message>
    <message>
        <source>A model named “%1” is already in this folder: choose another name, or tick “Replace a model folder of the same name”.</source>
        <translation>A model named “%1” is already in this folder: choose another name, or tick “Replace a model folder of the same name”.</translation>
    </message>
    <message>
        <source>Done: the model is in %1.</source>
        <translation>Done: the model is in %1.</translation>
    </message>
    <message>
        <source>Step %1 of %2: %3</source>
        <translation>Step %1 of %2: %3</translation>
    </message>
    <message>
        <source>Load</source>
        <translation>Load</translation>
    </message>
    <message>
        <source>Convert to ONNX</source>
        <translation>Convert to ONNX</translation>
    </message>
    <message>
        <source>Quantize</source>
        <translation>Quantize</translation>
    </message>
    <message>
        <source>Check quality</source>
        <translation>Check quality</translation>
    </message>
    <message>
        <source>Write</source>
        <translation>Write</translation>
    </message>
    <message>
        <source>Took %1</source>
        <translation>Took %1</translation>
    </message>
    <message>
        <source>Elapsed %1 · estimating the time left…</source>
        <translation>Elapsed %1 · estimating the time left…</translation>
    </message>
    <message>
        <source>Elapsed %1 · about %2 s left</source>
        <translation>Elapsed %1 · about %2 s left</translation>
    </message>
    <message>
        <source>Elapsed %1 · about %2 min left</source>
        <translation>Elapsed %1 · about %2 min left</translation>
    </message>
    <message>
        <source>The export was stopped.</source>
        <translation>The export was stopped.</translation>
    </message>
    <message>
        <source>The export ended with exit code %1.</source>
        <translation>The export ended with exit code %1.</translation>
    </message>
    <message>
        <source>The export did not finish.</source>
        <translation>The export did not finish.</translation>
    </message>
    <message>
        <source>The export could not start: %1</source>
        <translation>The export could not start: %1</translation>
    </message>
    <message>
        <source>%1 items were dropped: drop one .gguf file or one model folder.</source>
        <translation>%1 items were dropped: drop one .gguf file or one model folder.</translation>
    </message>
    <message>
        <source>Only files on this computer can be exported: download the model first, then drop the file or folder.</source>
        <translation>Only files on this computer can be exported: download the model first, then drop the file or folder.</translation>
    </message>
    <message>
        <source>%1 cannot be found: drop a .gguf file or a model folder.</source>
        <translation>%1 cannot be found: drop a .gguf file or a model folder.</translation>
    </message>
    <message>
        <source>%1 is already an OnnxChat model folder: put it in a models folder to use it, no export needed.</source>
        <translation>%1 is already an OnnxChat model folder: put it in a models folder to use it, no export needed.</translation>
    </message>
    <message>
        <source>%1 is not a model folder (it has no config.json): drop the folder with config.json and the weights, or a .gguf file.</source>
        <translation>%1 is not a model folder (it has no config.json): drop the folder with config.json and the weights, or a .gguf file.</translation>
    </message>
    <message>
        <source>%1 is not a .gguf file: drop a .gguf file or a Hugging Face model folder.</source>
        <translation>%1 is not a .gguf file: drop a .gguf file or a Hugging Face model folder.</translation>
    </message>
    <message>
        <source>GGUF models (*.gguf)</source>
        <translation>GGUF models (*.gguf)</translation>
    </message>
    <message>
        <source>Hide details</source>
        <translation>Hide details</translation>
    </message>
</context>
<context>
    <name>ExportSummary</name>
    <message>
        <source>Recipe</source>
        <translation>Recipe</translation>
    </message>
    <message>
        <source>Why</source>
        <translation>Why</translation>
    </message>
    <message>
        <source>Quality gate</source>
        <translation>Quality gate</translation>
    </message>
    <message>
        <source>Asked for by name.</source>
        <translation>Asked for by name.</translation>
    </message>
    <message>
        <source>auto: the fastest recipe for this model, and it passed the quality gate.</source>
        <translation>auto: the fastest recipe for this model, and it passed the quality gate.</translation>
    </message>
    <message>
        <source>auto: the fastest recipe that passed the quality gate, after %1.</source>
        <translation>auto: the fastest recipe that passed the quality gate, after %1.</translation>
    </message>
    <message>
        <source>%1 could not be built (%2)</source>
        <translation>%1 could not be built (%2)</translation>
    </message>
    <message>
        <source>%1 failed</source>
        <translation>%1 failed</translation>
    </message>
    <message>
        <source>%1 failed (perplexity ×%2, top-1 %3%)</source>
        <translation>%1 failed (perplexity ×%2, top-1 %3%)</translation>
    </message>
    <message>
        <source>Not validated.</source>
        <translation>Not validated.</translation>
    </message>
    <message>
        <source>perplexity ×%1 of fp32 (at most ×%2), top-1 agreement %3% (at least %4%) over %5 tokens</source>
        <translation>perplexity ×%1 of fp32 (at most ×%2), top-1 agreement %3% (at least %4%) over %5 tokens</translation>
    </message>
    <message>
        <source>Passed: %1.</source>
        <translation>Passed: %1.</translation>
    </message>
    <message>
        <source>Failed, kept because of --force: %1.</source>
        <translation>Failed, kept because of --force: %1.</translation>
    </message>
    <message>
        <source>Failed: %1.</source>
        <translation>Failed: %1.</translation>
    </message>
    <message>
        <source>Not run: %1.</source>
        <translation>Not run: %1.</translation>
    </message>
    <message>
        <source>Ran, without figures.</source>
        <translation>Ran, without figures.</translation>
    </message>
    <message>
        <source>NLL per byte %1, llama.cpp %2 (ratio %3, within ±%4%).</source>
        <translation>NLL per byte %1, llama.cpp %2 (ratio %3, within ±%4%).</translation>
    </message>
    <message>
        <source>The same token ids as llama.cpp.</source>
        <translation>The same token ids as llama.cpp.</translation>
    </message>
    <message>
        <source>The token ids differ from llama.cpp&apos;s from token %1 on.</source>
        <translation>The token ids differ from llama.cpp&apos;s from token %1 on.</translation>
    </message>
</context>
<context>
    <name>FullTextDialog</name>
    <message>
        <source>Whole message</source>
        <translation>Whole message</translation>
    </message>
    <message>
        <source>Message text</source>
        <translation>Message text</translation>
    </message>
    <message>
        <source>Previous page</source>
        <translation>Previous page</translation>
    </message>
    <message>
        <source>Page</source>
        <translation>Page</translation>
    </message>
    <message>
        <source> of %1</source>
        <translation> of %1</translation>
    </message>
    <message>
        <source>Next page</source>
        <translation>Next page</translation>
    </message>
    <message>
        <source>Copy all</source>
        <translation>Copy all</translation>
    </message>
    <message>
        <source>Copy the whole message to the clipboard</source>
        <translation>Copy the whole message to the clipboard</translation>
    </message>
    <message>
        <source>Characters %1–%2 of %3</source>
        <translation>Characters %1–%2 of %3</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>Copied</translation>
    </message>
</context>
<context>
    <name>LocalServer</name>
    <message>
        <source>the server ended with exit code %1</source>
        <translation>the server ended with exit code %1</translation>
    </message>
    <message>
        <source>the server could not start: %1</source>
        <translation>the server could not start: %1</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>&amp;File</source>
        <translation>&amp;File</translation>
    </message>
    <message>
        <source>&amp;New chat</source>
        <translation>&amp;New chat</translation>
    </message>
    <message>
        <source>Export this chat as &amp;Markdown…</source>
        <translation>Export this chat as &amp;Markdown…</translation>
    </message>
    <message>
        <source>Export all chats as &amp;JSON…</source>
        <translation>Export all chats as &amp;JSON…</translation>
    </message>
    <message>
        <source>&amp;Import chats from JSON…</source>
        <translation>&amp;Import chats from JSON…</translation>
    </message>
    <message>
        <source>&amp;Settings…</source>
        <translation>&amp;Settings…</translation>
    </message>
    <message>
        <source>&amp;Quit</source>
        <translation>&amp;Quit</translation>
    </message>
    <message>
        <source>&amp;Chat</source>
        <translation>&amp;Chat</translation>
    </message>
    <message>
        <source>&amp;Focus the message box</source>
        <translation>&amp;Focus the message box</translation>
    </message>
    <message>
        <source>&amp;Search chats</source>
        <translation>&amp;Search chats</translation>
    </message>
    <message>
        <source>S&amp;top the reply</source>
        <translation>S&amp;top the reply</translation>
    </message>
    <message>
        <source>&amp;Rename chat</source>
        <translation>&amp;Rename chat</translation>
    </message>
    <message>
        <source>&amp;Model</source>
        <translation>&amp;Model</translation>
    </message>
    <message>
        <source>&amp;Prepare a model…</source>
        <translation>&amp;Prepare a model…</translation>
    </message>
    <message>
        <source>&amp;Manage models…</source>
        <translation>&amp;Manage models…</translation>
    </message>
    <message>
        <source>&amp;Refresh the model list</source>
        <translation>&amp;Refresh the model list</translation>
    </message>
    <message>
        <source>&amp;Local server</source>
        <translation>&amp;Local server</translation>
    </message>
    <message>
        <source>Save local server requests to the &amp;history</source>
        <translation>Save local server requests to the &amp;history</translation>
    </message>
    <message>
        <source>&amp;Help</source>
        <translation>&amp;Help</translation>
    </message>
    <message>
        <source>&amp;About OnnxChat</source>
        <translation>&amp;About OnnxChat</translation>
    </message>
    <message>
        <source>The model is loading…</source>
        <translation>The model is loading…</translation>
    </message>
    <message>
        <source>Choose a model to start chatting.</source>
        <translation>Choose a model to start chatting.</translation>
    </message>
    <message>
        <source>Deleted “%1”.</source>
        <translation>Deleted “%1”.</translation>
    </message>
    <message>
        <source>Undo</source>
        <translation>Undo</translation>
    </message>
    <message>
        <source>This message fits the context only with a shorter reply: lower Max new tokens to %1 or less in Settings, or shorten the message.</source>
        <translation>This message fits the context only with a shorter reply: lower Max new tokens to %1 or less in Settings, or shorten the message.</translation>
    </message>
    <message>
        <source>Delete message</source>
        <translation>Delete message</translation>
    </message>
    <message>
        <source>Delete this message and everything after it in this branch?</source>
        <translation>Delete this message and everything after it in this branch?</translation>
    </message>
    <message numerus="yes">
        <source>Left out %n older message(s) that did not fit the context</source>
        <translation>
            <numerusform>Left out %n older message that did not fit the context</numerusform>
            <numerusform>Left out %n older messages that did not fit the context</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n older message(s) will be left out to fit the context</source>
        <translation>
            <numerusform>%n older message will be left out to fit the context</numerusform>
            <numerusform>%n older messages will be left out to fit the context</numerusform>
        </translation>
    </message>
    <message>
        <source>The int8 KV cache is not used for %1: %2.</source>
        <translation>The int8 KV cache is not used for %1: %2.</translation>
    </message>
    <message>
        <source>The int8 KV cache is not used for %1: it runs on the CPU, and the device chosen is CUDA.</source>
        <translation>The int8 KV cache is not used for %1: it runs on the CPU, and the device chosen is CUDA.</translation>
    </message>
    <message>
        <source>Load a model before starting the local server.</source>
        <translation>Load a model before starting the local server.</translation>
    </message>
    <message>
        <source>The local server stopped: %1</source>
        <translation>The local server stopped: %1</translation>
    </message>
    <message numerus="yes">
        <source>Imported %n chat(s).</source>
        <translation>
            <numerusform>Imported %n chat.</numerusform>
            <numerusform>Imported %n chats.</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Skipped %n already here.</source>
        <translation>
            <numerusform>Skipped %n already here.</numerusform>
            <numerusform>Skipped %n already here.</numerusform>
        </translation>
    </message>
    <message>
        <source>The reply failed: %1</source>
        <translation>The reply failed: %1</translation>
    </message>
    <message>
        <source>The model could not be loaded: %1</source>
        <translation>The model could not be loaded: %1</translation>
    </message>
    <message>
        <source>Open a chat to export it.</source>
        <translation>Open a chat to export it.</translation>
    </message>
    <message>
        <source>Export chat</source>
        <translation>Export chat</translation>
    </message>
    <message>
        <source>Markdown (*.md)</source>
        <translation>Markdown (*.md)</translation>
    </message>
    <message>
        <source>Export all chats</source>
        <translation>Export all chats</translation>
    </message>
    <message>
        <source>JSON (*.json)</source>
        <translation>JSON (*.json)</translation>
    </message>
    <message>
        <source>Could not write %1: %2</source>
        <translation>Could not write %1: %2</translation>
    </message>
    <message>
        <source>Saved %1.</source>
        <translation>Saved %1.</translation>
    </message>
    <message>
        <source>Import chats</source>
        <translation>Import chats</translation>
    </message>
    <message>
        <source>About OnnxChat</source>
        <translation>About OnnxChat</translation>
    </message>
    <message>
        <source>OnnxChat %1 — offline chat with local language models on ONNX Runtime.</source>
        <translation>OnnxChat %1 — offline chat with local language models on ONNX Runtime.</translation>
    </message>
</context>
<context>
    <name>MarkdownView</name>
    <message>
        <source>Message text</source>
        <translation>Message text</translation>
    </message>
</context>
<context>
    <name>MessageWidget</name>
    <message>
        <source>You</source>
        <translation>You</translation>
    </message>
    <message>
        <source>Assistant</source>
        <translation>Assistant</translation>
    </message>
    <message>
        <source>Your message</source>
        <translation>Your message</translation>
    </message>
    <message>
        <source>Reply</source>
        <translation>Reply</translation>
    </message>
    <message>
        <source>Show all</source>
        <translation>Show all</translation>
    </message>
    <message>
        <source>Read the whole message in a viewer</source>
        <translation>Read the whole message in a viewer</translation>
    </message>
    <message>
        <source>Edit message</source>
        <translation>Edit message</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>Cancel</translation>
    </message>
    <message>
        <source>Save &amp;&amp; send</source>
        <translation>Save &amp;&amp; send</translation>
    </message>
    <message>
        <source>Send the edited message; the original and its replies stay as a branch</source>
        <translation>Send the edited message; the original and its replies stay as a branch</translation>
    </message>
    <message>
        <source>Previous version</source>
        <translation>Previous version</translation>
    </message>
    <message>
        <source>Next version</source>
        <translation>Next version</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>Copy</translation>
    </message>
    <message>
        <source>Copy the message text</source>
        <translation>Copy the message text</translation>
    </message>
    <message>
        <source>Edit</source>
        <translation>Edit</translation>
    </message>
    <message>
        <source>Edit this message and send it again</source>
        <translation>Edit this message and send it again</translation>
    </message>
    <message>
        <source>Regenerate</source>
        <translation>Regenerate</translation>
    </message>
    <message>
        <source>Answer again; this reply is kept as a branch</source>
        <translation>Answer again; this reply is kept as a branch</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>Delete</translation>
    </message>
    <message>
        <source>Delete this message and everything after it</source>
        <translation>Delete this message and everything after it</translation>
    </message>
    <message>
        <source>Version %1 of %2</source>
        <translation>Version %1 of %2</translation>
    </message>
    <message numerus="yes">
        <source>%n token(s)</source>
        <translation>
            <numerusform>%n token</numerusform>
            <numerusform>%n tokens</numerusform>
        </translation>
    </message>
    <message>
        <source> · %1 tokens/s</source>
        <translation> · %1 tokens/s</translation>
    </message>
    <message>
        <source>Showing %1 of %2 characters.</source>
        <translation>Showing %1 of %2 characters.</translation>
    </message>
    <message>
        <source>Generating…</source>
        <translation>Generating…</translation>
    </message>
    <message>
        <source>Stopped</source>
        <translation>Stopped</translation>
    </message>
    <message>
        <source>Interrupted: the app closed while this reply was written</source>
        <translation>Interrupted: the app closed while this reply was written</translation>
    </message>
    <message>
        <source>Error: %1</source>
        <translation>Error: %1</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>Copied</translation>
    </message>
</context>
<context>
    <name>ModelBar</name>
    <message>
        <source>Model</source>
        <translation>Model</translation>
    </message>
    <message>
        <source>Device</source>
        <translation>Device</translation>
    </message>
    <message>
        <source>Auto</source>
        <translation>Auto</translation>
    </message>
    <message>
        <source>Auto uses CUDA when it works, else the CPU</source>
        <translation>Auto uses CUDA when it works, else the CPU</translation>
    </message>
    <message>
        <source>Loading the model</source>
        <translation>Loading the model</translation>
    </message>
    <message>
        <source>Settings</source>
        <translation>Settings</translation>
    </message>
    <message>
        <source>Chat and application settings (Ctrl+,)</source>
        <translation>Chat and application settings (Ctrl+,)</translation>
    </message>
    <message>
        <source>%1 (unusable)</source>
        <translation>%1 (unusable)</translation>
    </message>
    <message>
        <source>No model installed</source>
        <translation>No model installed</translation>
    </message>
    <message>
        <source>perplexity ×%1, top-1 agreement %2%</source>
        <translation>perplexity ×%1, top-1 agreement %2%</translation>
    </message>
    <message>
        <source>not validated</source>
        <translation>not validated</translation>
    </message>
    <message>
        <source>failed validation</source>
        <translation>failed validation</translation>
    </message>
    <message>
        <source>Loading %1…</source>
        <translation>Loading %1…</translation>
    </message>
</context>
<context>
    <name>ModelsDialog</name>
    <message>
        <source>Models</source>
        <translation>Models</translation>
    </message>
    <message>
        <source>Installed models</source>
        <translation>Installed models</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Model</translation>
    </message>
    <message>
        <source>Family</source>
        <translation>Family</translation>
    </message>
    <message>
        <source>Parameters</source>
        <translation>Parameters</translation>
    </message>
    <message>
        <source>Quantization</source>
        <translation>Quantization</translation>
    </message>
    <message>
        <source>Disk use</source>
        <translation>Disk use</translation>
    </message>
    <message>
        <source>Delete…</source>
        <translation>Delete…</translation>
    </message>
    <message>
        <source>Delete the selected model</source>
        <translation>Delete the selected model</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>Close</translation>
    </message>
    <message>
        <source>%1 (in use)</source>
        <translation>%1 (in use)</translation>
    </message>
    <message>
        <source>%1 (unusable)</source>
        <translation>%1 (unusable)</translation>
    </message>
    <message>
        <source>No model is installed.</source>
        <translation>No model is installed.</translation>
    </message>
    <message>
        <source>Deleted %1.</source>
        <translation>Deleted %1.</translation>
    </message>
    <message>
        <source>%1 is in use: choose another model first, then delete it.</source>
        <translation>%1 is in use: choose another model first, then delete it.</translation>
    </message>
    <message>
        <source>Deleting a model removes its folder from the disk; chats that used it are kept.</source>
        <translation>Deleting a model removes its folder from the disk; chats that used it are kept.</translation>
    </message>
    <message>
        <source>Delete a model</source>
        <translation>Delete a model</translation>
    </message>
    <message>
        <source>Delete %1? This frees %2 on the disk.</source>
        <translation>Delete %1? This frees %2 on the disk.</translation>
    </message>
    <message>
        <source>The folder %1 is removed. Chats that used the model are kept.</source>
        <translation>The folder %1 is removed. Chats that used the model are kept.</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>Delete</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>Cancel</translation>
    </message>
</context>
<context>
    <name>ServerStatus</name>
    <message>
        <source>%1 running, %2 waiting, %3 answered</source>
        <translation>%1 running, %2 waiting, %3 answered</translation>
    </message>
    <message>
        <source>starting…</source>
        <translation>starting…</translation>
    </message>
    <message>
        <source>stopping…</source>
        <translation>stopping…</translation>
    </message>
    <message>
        <source>Local server: %1</source>
        <translation>Local server: %1</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <source>Settings</source>
        <translation>Settings</translation>
    </message>
    <message>
        <source>This chat</source>
        <translation>This chat</translation>
    </message>
    <message>
        <source>Application</source>
        <translation>Application</translation>
    </message>
    <message>
        <source>These settings are saved with this conversation. Defaults come from the model %1.</source>
        <translation>These settings are saved with this conversation. Defaults come from the model %1.</translation>
    </message>
    <message>
        <source>These settings are saved with this conversation. Defaults come from the model.</source>
        <translation>These settings are saved with this conversation. Defaults come from the model.</translation>
    </message>
    <message>
        <source>System prompt</source>
        <translation>System prompt</translation>
    </message>
    <message>
        <source>Optional instructions the model sees before the conversation</source>
        <translation>Optional instructions the model sees before the conversation</translation>
    </message>
    <message>
        <source>Temperature</source>
        <translation>Temperature</translation>
    </message>
    <message>
        <source>Randomness: 0 always picks the most likely token</source>
        <translation>Randomness: 0 always picks the most likely token</translation>
    </message>
    <message>
        <source>Top-k</source>
        <translation>Top-k</translation>
    </message>
    <message>
        <source>Sample only among the k most likely tokens; 0 turns this off</source>
        <translation>Sample only among the k most likely tokens; 0 turns this off</translation>
    </message>
    <message>
        <source>Top-p</source>
        <translation>Top-p</translation>
    </message>
    <message>
        <source>Sample among the most likely tokens that make up this share of probability</source>
        <translation>Sample among the most likely tokens that make up this share of probability</translation>
    </message>
    <message>
        <source>Min-p</source>
        <translation>Min-p</translation>
    </message>
    <message>
        <source>Leave out tokens less likely than this share of the most likely one</source>
        <translation>Leave out tokens less likely than this share of the most likely one</translation>
    </message>
    <message>
        <source>Repetition penalty</source>
        <translation>Repetition penalty</translation>
    </message>
    <message>
        <source>Above 1 makes recently used tokens less likely</source>
        <translation>Above 1 makes recently used tokens less likely</translation>
    </message>
    <message>
        <source>Max new tokens</source>
        <translation>Max new tokens</translation>
    </message>
    <message>
        <source>The longest reply, in tokens</source>
        <translation>The longest reply, in tokens</translation>
    </message>
    <message>
        <source>Seed</source>
        <translation>Seed</translation>
    </message>
    <message>
        <source>The same seed and settings give the same reply; empty means random</source>
        <translation>The same seed and settings give the same reply; empty means random</translation>
    </message>
    <message>
        <source>random</source>
        <translation>random</translation>
    </message>
    <message>
        <source>Valid range: %1</source>
        <translation>Valid range: %1</translation>
    </message>
    <message>
        <source>Reset to defaults</source>
        <translation>Reset to defaults</translation>
    </message>
    <message>
        <source>Use the model&apos;s default sampling settings</source>
        <translation>Use the model&apos;s default sampling settings</translation>
    </message>
    <message>
        <source>Language</source>
        <translation>Language</translation>
    </message>
    <message>
        <source>System default</source>
        <translation>System default</translation>
    </message>
    <message>
        <source>Theme</source>
        <translation>Theme</translation>
    </message>
    <message>
        <source>Follow the system</source>
        <translation>Follow the system</translation>
    </message>
    <message>
        <source>Light</source>
        <translation>Light</translation>
    </message>
    <message>
        <source>Dark</source>
        <translation>Dark</translation>
    </message>
    <message>
        <source>Memory for the conversation</source>
        <translation>Memory for the conversation</translation>
    </message>
    <message>
        <source>Full precision (fp32)</source>
        <translation>Full precision (fp32)</translation>
    </message>
    <message>
        <source>Compact (int8, on the CPU)</source>
        <translation>Compact (int8, on the CPU)</translation>
    </message>
    <message>
        <source>The model&apos;s KV cache. Compact takes a quarter of the memory and answers about twice as fast in long conversations, at a small cost in accuracy; it runs on the CPU, for models exported with it.</source>
        <translation>The model&apos;s KV cache. Compact takes a quarter of the memory and answers about twice as fast in long conversations, at a small cost in accuracy; it runs on the CPU, for models exported with it.</translation>
    </message>
    <message>
        <source>Compact keeps a quarter of the memory and answers about twice as fast in long conversations, at a small cost in accuracy. It runs on the CPU; the model reloads when you change it.</source>
        <translation>Compact keeps a quarter of the memory and answers about twice as fast in long conversations, at a small cost in accuracy. It runs on the CPU; the model reloads when you change it.</translation>
    </message>
    <message>
        <source>Enter a whole number</source>
        <translation>Enter a whole number</translation>
    </message>
    <message>
        <source>Enter a number</source>
        <translation>Enter a number</translation>
    </message>
    <message>
        <source>Out of range: valid values are %1</source>
        <translation>Out of range: valid values are %1</translation>
    </message>
</context>
<context>
    <name>Sidebar</name>
    <message>
        <source>New chat</source>
        <translation>New chat</translation>
    </message>
    <message>
        <source>Start a new conversation (Ctrl+N)</source>
        <translation>Start a new conversation (Ctrl+N)</translation>
    </message>
    <message>
        <source>Search chats (Ctrl+F)</source>
        <translation>Search chats (Ctrl+F)</translation>
    </message>
    <message>
        <source>Search chats</source>
        <translation>Search chats</translation>
    </message>
    <message>
        <source>Conversations</source>
        <translation>Conversations</translation>
    </message>
    <message>
        <source>No chats yet</source>
        <translation>No chats yet</translation>
    </message>
    <message>
        <source>Nothing matches “%1”</source>
        <translation>Nothing matches “%1”</translation>
    </message>
    <message>
        <source>Rename</source>
        <translation>Rename</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>Delete</translation>
    </message>
</context>
<context>
    <name>StatusBar</name>
    <message>
        <source>Decoding speed of the last reply</source>
        <translation>Decoding speed of the last reply</translation>
    </message>
    <message>
        <source>Time to the first token of the last reply</source>
        <translation>Time to the first token of the last reply</translation>
    </message>
    <message>
        <source>Context used</source>
        <translation>Context used</translation>
    </message>
    <message>
        <source>Tokens of the conversation plus the space kept for the reply, out of the model&apos;s context</source>
        <translation>Tokens of the conversation plus the space kept for the reply, out of the model&apos;s context</translation>
    </message>
    <message>
        <source>Model: %1</source>
        <translation>Model: %1</translation>
    </message>
    <message>
        <source>No model loaded</source>
        <translation>No model loaded</translation>
    </message>
    <message>
        <source>Device: %1</source>
        <translation>Device: %1</translation>
    </message>
    <message>
        <source>%1 tokens/s</source>
        <translation>%1 tokens/s</translation>
    </message>
    <message>
        <source>— tokens/s</source>
        <translation>— tokens/s</translation>
    </message>
    <message>
        <source>first token %1 ms</source>
        <translation>first token %1 ms</translation>
    </message>
    <message>
        <source>first token —</source>
        <translation>first token —</translation>
    </message>
    <message>
        <source>Context %1 / %2</source>
        <translation>Context %1 / %2</translation>
    </message>
    <message>
        <source>Context —</source>
        <translation>Context —</translation>
    </message>
</context>
<context>
    <name>WelcomePage</name>
    <message>
        <source>Welcome to OnnxChat</source>
        <translation>Welcome to OnnxChat</translation>
    </message>
    <message>
        <source>Chat with language models on your own computer, offline. No model is installed yet.</source>
        <translation>Chat with language models on your own computer, offline. No model is installed yet.</translation>
    </message>
    <message>
        <source>Prepare the default model</source>
        <translation>Prepare the default model</translation>
    </message>
    <message>
        <source>SmolLM2-135M-Instruct ships with OnnxChat. Preparing it converts and checks it, which takes about a minute.</source>
        <translation>SmolLM2-135M-Instruct ships with OnnxChat. Preparing it converts and checks it, which takes about a minute.</translation>
    </message>
    <message>
        <source>Preparing a model needs the export step, which is not installed in this copy. Install it with:</source>
        <translation>Preparing a model needs the export step, which is not installed in this copy. Install it with:</translation>
    </message>
    <message>
        <source>Install command</source>
        <translation>Install command</translation>
    </message>
</context>
</TS>
