<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>Banner</name>
    <message>
        <source>Dismiss</source>
        <translation>关闭</translation>
    </message>
</context>
<context>
    <name>ChatView</name>
    <message>
        <source>Conversation</source>
        <translation>对话</translation>
    </message>
    <message>
        <source>Show earlier messages</source>
        <translation>显示更早的消息</translation>
    </message>
    <message numerus="yes">
        <source>Show earlier messages (%n more)</source>
        <translation>
            <numerusform>显示更早的消息（还有 %n 条）</numerusform>
        </translation>
    </message>
    <message>
        <source>Chatting with %1.</source>
        <translation>正在与 %1 对话。</translation>
    </message>
    <message>
        <source>No model is loaded yet.</source>
        <translation>尚未加载模型。</translation>
    </message>
    <message>
        <source>Type a message below. Enter sends, Shift+Enter starts a new line.</source>
        <translation>在下方输入消息。按 Enter 发送，Shift+Enter 换行。</translation>
    </message>
</context>
<context>
    <name>CodeBlock</name>
    <message>
        <source>Copy code</source>
        <translation>复制代码</translation>
    </message>
    <message>
        <source>Copy this code block to the clipboard</source>
        <translation>将此代码块复制到剪贴板</translation>
    </message>
    <message>
        <source>Code</source>
        <translation>代码</translation>
    </message>
    <message>
        <source>code</source>
        <translation>代码</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>已复制</translation>
    </message>
</context>
<context>
    <name>Composer</name>
    <message>
        <source>Show</source>
        <translation>显示</translation>
    </message>
    <message>
        <source>Read the pasted text</source>
        <translation>查看粘贴的文本</translation>
    </message>
    <message>
        <source>Remove</source>
        <translation>移除</translation>
    </message>
    <message>
        <source>Leave the pasted text out of the message</source>
        <translation>不在消息中包含粘贴的文本</translation>
    </message>
    <message>
        <source>Message — Enter to send, Shift+Enter for a new line</source>
        <translation>输入消息 — Enter 发送，Shift+Enter 换行</translation>
    </message>
    <message>
        <source>Message input</source>
        <translation>消息输入框</translation>
    </message>
    <message>
        <source>Send</source>
        <translation>发送</translation>
    </message>
    <message>
        <source>Send message</source>
        <translation>发送消息</translation>
    </message>
    <message>
        <source>Send (Enter)</source>
        <translation>发送（Enter）</translation>
    </message>
    <message>
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <source>Stop generating</source>
        <translation>停止生成</translation>
    </message>
    <message>
        <source>Stop the reply (Esc)</source>
        <translation>停止回复（Esc）</translation>
    </message>
    <message>
        <source>Pasted text: %1 characters</source>
        <translation>粘贴的文本：%1 个字符</translation>
    </message>
</context>
<context>
    <name>ExportDialog</name>
    <message>
        <source>Prepare a model</source>
        <translation>准备模型</translation>
    </message>
    <message>
        <source>The export step is not installed in this copy of OnnxChat. It converts a model to the ONNX format the app runs, and needs PyTorch and Optimum. Install it with:</source>
        <translation>此 OnnxChat 副本未安装导出组件。导出组件负责把模型转换为本应用运行的 ONNX 格式，需要 PyTorch 和 Optimum。请用以下命令安装：</translation>
    </message>
    <message>
        <source>Install command</source>
        <translation>安装命令</translation>
    </message>
    <message>
        <source>Then open this dialog again, or run “onnxchat export default” in a terminal.</source>
        <translation>安装后重新打开此对话框，或在终端中运行“onnxchat export default”。</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>关闭</translation>
    </message>
    <message>
        <source>Convert a model to an OnnxChat model folder. The result is checked against the original before it is kept.</source>
        <translation>将模型转换为 OnnxChat 模型文件夹。转换结果会先与原模型对比检验，通过后才会保留。</translation>
    </message>
    <message>
        <source>Source</source>
        <translation>来源</translation>
    </message>
    <message>
        <source>The bundled default model (SmolLM2-135M-Instruct)</source>
        <translation>内置的默认模型（SmolLM2-135M-Instruct）</translation>
    </message>
    <message>
        <source>A Hugging Face model folder</source>
        <translation>Hugging Face 模型文件夹</translation>
    </message>
    <message>
        <source>A .gguf file</source>
        <translation>.gguf 文件</translation>
    </message>
    <message>
        <source>Model folder</source>
        <translation>模型文件夹</translation>
    </message>
    <message>
        <source>Folder with config.json and weights</source>
        <translation>包含 config.json 和权重的文件夹</translation>
    </message>
    <message>
        <source>GGUF file</source>
        <translation>GGUF 文件</translation>
    </message>
    <message>
        <source>Path to a .gguf file</source>
        <translation>.gguf 文件的路径</translation>
    </message>
    <message>
        <source>Browse…</source>
        <translation>浏览…</translation>
    </message>
    <message>
        <source>Choose a model folder</source>
        <translation>选择模型文件夹</translation>
    </message>
    <message>
        <source>Choose a GGUF file</source>
        <translation>选择 GGUF 文件</translation>
    </message>
    <message>
        <source>Or drop a .gguf file or a model folder on this window.</source>
        <translation>也可以把 .gguf 文件或模型文件夹拖放到此窗口。</translation>
    </message>
    <message>
        <source>Quantization</source>
        <translation>量化</translation>
    </message>
    <message>
        <source>int8 — 8-bit weights, near-lossless, loads in every runtime</source>
        <translation>int8 — 8 位权重，几乎无损，各运行时均可加载</translation>
    </message>
    <message>
        <source>auto — the fastest recipe that passes the quality gate (recommended)</source>
        <translation>auto — 通过质量检验的最快方案（推荐）</translation>
    </message>
    <message>
        <source>q4-gguf — a GGUF file&apos;s own quantized blocks, carried exactly (4-bit types as 4-bit, wider ones as 8-bit), fused graph, fastest</source>
        <translation>q4-gguf — 原样沿用 GGUF 文件自带的量化块（4 位类型保持 4 位，更宽的类型为 8 位），融合计算图，最快</translation>
    </message>
    <message>
        <source>int8-fused — 8-bit weights in the fused graph, fast</source>
        <translation>int8-fused — 融合计算图中的 8 位权重，速度快</translation>
    </message>
    <message>
        <source>fp32-fused — full-precision weights in the fused graph, exact, 4× the size of int8</source>
        <translation>fp32-fused — 融合计算图中的全精度权重，精确，体积为 int8 的 4 倍</translation>
    </message>
    <message>
        <source>int4 — 4-bit weights, smaller and faster, some quality loss</source>
        <translation>int4 — 4 位权重，更小更快，质量略有下降</translation>
    </message>
    <message>
        <source>fp32 — no quantization, largest</source>
        <translation>fp32 — 不量化，体积最大</translation>
    </message>
    <message>
        <source>Model name</source>
        <translation>模型名称</translation>
    </message>
    <message>
        <source>Save to folder</source>
        <translation>保存到文件夹</translation>
    </message>
    <message>
        <source>Choose where to save</source>
        <translation>选择保存位置</translation>
    </message>
    <message>
        <source>Save to</source>
        <translation>保存到</translation>
    </message>
    <message>
        <source>Replace a model folder of the same name</source>
        <translation>替换同名的模型文件夹</translation>
    </message>
    <message>
        <source>Export progress</source>
        <translation>导出进度</translation>
    </message>
    <message>
        <source>Export stages</source>
        <translation>导出阶段</translation>
    </message>
    <message>
        <source>Ready. An export of the default model takes about a minute.</source>
        <translation>准备就绪。导出默认模型大约需要一分钟。</translation>
    </message>
    <message>
        <source>Show details</source>
        <translation>显示详细信息</translation>
    </message>
    <message>
        <source>Export log</source>
        <translation>导出日志</translation>
    </message>
    <message>
        <source>Validation report</source>
        <translation>验证报告</translation>
    </message>
    <message>
        <source>Export</source>
        <translation>导出</translation>
    </message>
    <message>
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <source>Use this model</source>
        <translation>使用此模型</translation>
    </message>
    <message>
        <source>Starting…</source>
        <translation>正在启动…</translation>
    </message>
    <message>
        <source>Stopping…</source>
        <translation>正在停止…</translation>
    </message>
    <message>
        <source>A model&apos;s name may use up to 100 ASCII letters, digits, “.”, “_” and “-”, starting with a letter or digit.</source>
        <translation>模型名称最多可用 100 个 ASCII 字母、数字、“.”、“_”和“-”，且须以字母或数字开头。</translation>
    </message>
    <message>
        <source>A model named “%1” is already in this folder: choose another name, or tick “Replace a model folder of the same name”.</source>
        <translation>此文件夹中已有名为“%1”的模型：请换一个名称，或勾选“替换同名的模型文件夹”。</translation>
    </message>
    <message>
        <source>Done: the model is in %1.</source>
        <translation>完成：模型位于 %1。</translation>
    </message>
    <message>
        <source>Step %1 of %2: %3</source>
        <translation>第 %1 步，共 %2 步：%3</translation>
    </message>
    <message>
        <source>Load</source>
        <translation>加载</translation>
    </message>
    <message>
        <source>Convert to ONNX</source>
        <translation>转换为 ONNX</translation>
    </message>
    <message>
        <source>Quantize</source>
        <translation>量化</translation>
    </message>
    <message>
        <source>Check quality</source>
        <translation>检验质量</translation>
    </message>
    <message>
        <source>Write</source>
        <translation>写入</translation>
    </message>
    <message>
        <source>Took %1</source>
        <translation>用时 %1</translation>
    </message>
    <message>
        <source>Elapsed %1 · estimating the time left…</source>
        <translation>已用 %1 · 正在估算剩余时间…</translation>
    </message>
    <message>
        <source>Elapsed %1 · about %2 s left</source>
        <translation>已用 %1 · 约剩 %2 秒</translation>
    </message>
    <message>
        <source>Elapsed %1 · about %2 min left</source>
        <translation>已用 %1 · 约剩 %2 分钟</translation>
    </message>
    <message>
        <source>The export was stopped.</source>
        <translation>导出已停止。</translation>
    </message>
    <message>
        <source>The export ended with exit code %1.</source>
        <translation>导出结束，退出码为 %1。</translation>
    </message>
    <message>
        <source>The export did not finish.</source>
        <translation>导出未完成。</translation>
    </message>
    <message>
        <source>The export could not start: %1</source>
        <translation>无法启动导出：%1</translation>
    </message>
    <message>
        <source>%1 items were dropped: drop one .gguf file or one model folder.</source>
        <translation>拖入了 %1 项：请只拖入一个 .gguf 文件或一个模型文件夹。</translation>
    </message>
    <message>
        <source>Only files on this computer can be exported: download the model first, then drop the file or folder.</source>
        <translation>只能导出本机上的文件：请先下载模型，再拖入文件或文件夹。</translation>
    </message>
    <message>
        <source>%1 cannot be found: drop a .gguf file or a model folder.</source>
        <translation>找不到 %1：请拖入 .gguf 文件或模型文件夹。</translation>
    </message>
    <message>
        <source>%1 is already an OnnxChat model folder: put it in a models folder to use it, no export needed.</source>
        <translation>%1 已是 OnnxChat 模型文件夹：放入模型目录即可使用，无需导出。</translation>
    </message>
    <message>
        <source>%1 is not a model folder (it has no config.json): drop the folder with config.json and the weights, or a .gguf file.</source>
        <translation>%1 不是模型文件夹（没有 config.json）：请拖入包含 config.json 和权重的文件夹，或 .gguf 文件。</translation>
    </message>
    <message>
        <source>%1 is not a .gguf file: drop a .gguf file or a Hugging Face model folder.</source>
        <translation>%1 不是 .gguf 文件：请拖入 .gguf 文件或 Hugging Face 模型文件夹。</translation>
    </message>
    <message>
        <source>GGUF models (*.gguf)</source>
        <translation>GGUF 模型 (*.gguf)</translation>
    </message>
    <message>
        <source>Hide details</source>
        <translation>隐藏详细信息</translation>
    </message>
</context>
<context>
    <name>ExportSummary</name>
    <message>
        <source>Recipe</source>
        <translation>方案</translation>
    </message>
    <message>
        <source>Why</source>
        <translation>原因</translation>
    </message>
    <message>
        <source>Quality gate</source>
        <translation>质量检验</translation>
    </message>
    <message>
        <source>Asked for by name.</source>
        <translation>按名称指定。</translation>
    </message>
    <message>
        <source>auto: the fastest recipe for this model, and it passed the quality gate.</source>
        <translation>auto：此模型最快的方案，且已通过质量检验。</translation>
    </message>
    <message>
        <source>auto: the fastest recipe that passed the quality gate, after %1.</source>
        <translation>auto：通过质量检验的最快方案，此前 %1。</translation>
    </message>
    <message>
        <source>%1 could not be built (%2)</source>
        <translation>%1 无法构建（%2）</translation>
    </message>
    <message>
        <source>%1 failed</source>
        <translation>%1 未通过</translation>
    </message>
    <message>
        <source>%1 failed (perplexity ×%2, top-1 %3%)</source>
        <translation>%1 未通过（困惑度 ×%2，top-1 %3%）</translation>
    </message>
    <message>
        <source>Not validated.</source>
        <translation>未验证。</translation>
    </message>
    <message>
        <source>perplexity ×%1 of fp32 (at most ×%2), top-1 agreement %3% (at least %4%) over %5 tokens</source>
        <translation>困惑度为 fp32 的 ×%1（上限 ×%2），top-1 一致率 %3%（下限 %4%），共 %5 个词元</translation>
    </message>
    <message>
        <source>Passed: %1.</source>
        <translation>通过：%1。</translation>
    </message>
    <message>
        <source>Failed, kept because of --force: %1.</source>
        <translation>未通过，因 --force 而保留：%1。</translation>
    </message>
    <message>
        <source>Failed: %1.</source>
        <translation>未通过：%1。</translation>
    </message>
    <message>
        <source>Not run: %1.</source>
        <translation>未运行：%1。</translation>
    </message>
    <message>
        <source>Ran, without figures.</source>
        <translation>已运行，但没有数据。</translation>
    </message>
    <message>
        <source>NLL per byte %1, llama.cpp %2 (ratio %3, within ±%4%).</source>
        <translation>每字节 NLL %1，llama.cpp 为 %2（比值 %3，允许 ±%4%）。</translation>
    </message>
    <message>
        <source>The same token ids as llama.cpp.</source>
        <translation>词元 ID 与 llama.cpp 完全相同。</translation>
    </message>
    <message>
        <source>The token ids differ from llama.cpp&apos;s from token %1 on.</source>
        <translation>从第 %1 个词元起，词元 ID 与 llama.cpp 不同。</translation>
    </message>
</context>
<context>
    <name>FullTextDialog</name>
    <message>
        <source>Whole message</source>
        <translation>完整消息</translation>
    </message>
    <message>
        <source>Message text</source>
        <translation>消息文本</translation>
    </message>
    <message>
        <source>Previous page</source>
        <translation>上一页</translation>
    </message>
    <message>
        <source>Page</source>
        <translation>页码</translation>
    </message>
    <message>
        <source> of %1</source>
        <translation> / %1</translation>
    </message>
    <message>
        <source>Next page</source>
        <translation>下一页</translation>
    </message>
    <message>
        <source>Copy all</source>
        <translation>全部复制</translation>
    </message>
    <message>
        <source>Copy the whole message to the clipboard</source>
        <translation>将整条消息复制到剪贴板</translation>
    </message>
    <message>
        <source>Characters %1–%2 of %3</source>
        <translation>第 %1–%2 个字符，共 %3 个</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>已复制</translation>
    </message>
</context>
<context>
    <name>LocalServer</name>
    <message>
        <source>the server ended with exit code %1</source>
        <translation>服务器已退出，退出码 %1</translation>
    </message>
    <message>
        <source>the server could not start: %1</source>
        <translation>服务器无法启动：%1</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>&amp;File</source>
        <translation>文件(&amp;F)</translation>
    </message>
    <message>
        <source>&amp;New chat</source>
        <translation>新建对话(&amp;N)</translation>
    </message>
    <message>
        <source>Export this chat as &amp;Markdown…</source>
        <translation>将此对话导出为 Markdown(&amp;M)…</translation>
    </message>
    <message>
        <source>Export all chats as &amp;JSON…</source>
        <translation>将所有对话导出为 JSON(&amp;J)…</translation>
    </message>
    <message>
        <source>&amp;Import chats from JSON…</source>
        <translation>从 JSON 导入对话(&amp;I)…</translation>
    </message>
    <message>
        <source>&amp;Settings…</source>
        <translation>设置(&amp;S)…</translation>
    </message>
    <message>
        <source>&amp;Quit</source>
        <translation>退出(&amp;Q)</translation>
    </message>
    <message>
        <source>&amp;Chat</source>
        <translation>对话(&amp;C)</translation>
    </message>
    <message>
        <source>&amp;Focus the message box</source>
        <translation>转到消息输入框(&amp;F)</translation>
    </message>
    <message>
        <source>&amp;Search chats</source>
        <translation>搜索对话(&amp;S)</translation>
    </message>
    <message>
        <source>S&amp;top the reply</source>
        <translation>停止回复(&amp;T)</translation>
    </message>
    <message>
        <source>&amp;Rename chat</source>
        <translation>重命名对话(&amp;R)</translation>
    </message>
    <message>
        <source>&amp;Model</source>
        <translation>模型(&amp;M)</translation>
    </message>
    <message>
        <source>&amp;Prepare a model…</source>
        <translation>准备模型(&amp;P)…</translation>
    </message>
    <message>
        <source>&amp;Manage models…</source>
        <translation>管理模型(&amp;M)…</translation>
    </message>
    <message>
        <source>&amp;Refresh the model list</source>
        <translation>刷新模型列表(&amp;R)</translation>
    </message>
    <message>
        <source>&amp;Local server</source>
        <translation>本地服务器(&amp;L)</translation>
    </message>
    <message>
        <source>Save local server requests to the &amp;history</source>
        <translation>将本地服务器的请求保存到历史记录(&amp;H)</translation>
    </message>
    <message>
        <source>&amp;Help</source>
        <translation>帮助(&amp;H)</translation>
    </message>
    <message>
        <source>&amp;About OnnxChat</source>
        <translation>关于 OnnxChat(&amp;A)</translation>
    </message>
    <message>
        <source>The model is loading…</source>
        <translation>模型加载中…</translation>
    </message>
    <message>
        <source>Choose a model to start chatting.</source>
        <translation>请选择一个模型开始对话。</translation>
    </message>
    <message>
        <source>Deleted “%1”.</source>
        <translation>已删除“%1”。</translation>
    </message>
    <message>
        <source>Undo</source>
        <translation>撤销</translation>
    </message>
    <message>
        <source>This message fits the context only with a shorter reply: lower Max new tokens to %1 or less in Settings, or shorten the message.</source>
        <translation>只有缩短回复，这条消息才能放进上下文：请在“设置”中把“最大生成词元数”降到 %1 或以下，或缩短消息。</translation>
    </message>
    <message>
        <source>Delete message</source>
        <translation>删除消息</translation>
    </message>
    <message>
        <source>Delete this message and everything after it in this branch?</source>
        <translation>要删除此消息以及此分支中其后的所有内容吗？</translation>
    </message>
    <message numerus="yes">
        <source>Left out %n older message(s) that did not fit the context</source>
        <translation>
            <numerusform>有 %n 条较早的消息超出了上下文长度，已被略去</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n older message(s) will be left out to fit the context</source>
        <translation>
            <numerusform>为适应上下文长度，将略去 %n 条较早的消息</numerusform>
        </translation>
    </message>
    <message>
        <source>The int8 KV cache is not used for %1: %2.</source>
        <translation>%1 未使用 int8 KV 缓存：%2。</translation>
    </message>
    <message>
        <source>The int8 KV cache is not used for %1: it runs on the CPU, and the device chosen is CUDA.</source>
        <translation>%1 未使用 int8 KV 缓存：它在 CPU 上运行，而所选设备是 CUDA。</translation>
    </message>
    <message>
        <source>Load a model before starting the local server.</source>
        <translation>请先加载模型，再启动本地服务器。</translation>
    </message>
    <message>
        <source>The local server stopped: %1</source>
        <translation>本地服务器已停止：%1</translation>
    </message>
    <message numerus="yes">
        <source>Imported %n chat(s).</source>
        <translation>
            <numerusform>已导入 %n 个对话。</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Skipped %n already here.</source>
        <translation>
            <numerusform>跳过了 %n 个已存在的对话。</numerusform>
        </translation>
    </message>
    <message>
        <source>The reply failed: %1</source>
        <translation>回复失败：%1</translation>
    </message>
    <message>
        <source>The model could not be loaded: %1</source>
        <translation>无法加载模型：%1</translation>
    </message>
    <message>
        <source>Open a chat to export it.</source>
        <translation>请先打开要导出的对话。</translation>
    </message>
    <message>
        <source>Export chat</source>
        <translation>导出对话</translation>
    </message>
    <message>
        <source>Markdown (*.md)</source>
        <translation>Markdown 文件 (*.md)</translation>
    </message>
    <message>
        <source>Export all chats</source>
        <translation>导出所有对话</translation>
    </message>
    <message>
        <source>JSON (*.json)</source>
        <translation>JSON 文件 (*.json)</translation>
    </message>
    <message>
        <source>Could not write %1: %2</source>
        <translation>无法写入 %1：%2</translation>
    </message>
    <message>
        <source>Saved %1.</source>
        <translation>已保存 %1。</translation>
    </message>
    <message>
        <source>Import chats</source>
        <translation>导入对话</translation>
    </message>
    <message>
        <source>About OnnxChat</source>
        <translation>关于 OnnxChat</translation>
    </message>
    <message>
        <source>OnnxChat %1 — offline chat with local language models on ONNX Runtime.</source>
        <translation>OnnxChat %1 — 基于 ONNX Runtime、使用本地语言模型的离线聊天应用。</translation>
    </message>
</context>
<context>
    <name>MarkdownView</name>
    <message>
        <source>Message text</source>
        <translation>消息文本</translation>
    </message>
</context>
<context>
    <name>MessageWidget</name>
    <message>
        <source>You</source>
        <translation>你</translation>
    </message>
    <message>
        <source>Assistant</source>
        <translation>助手</translation>
    </message>
    <message>
        <source>Your message</source>
        <translation>你的消息</translation>
    </message>
    <message>
        <source>Reply</source>
        <translation>回复</translation>
    </message>
    <message>
        <source>Show all</source>
        <translation>显示全部</translation>
    </message>
    <message>
        <source>Read the whole message in a viewer</source>
        <translation>在查看器中阅读整条消息</translation>
    </message>
    <message>
        <source>Edit message</source>
        <translation>编辑消息</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>Save &amp;&amp; send</source>
        <translation>保存并发送</translation>
    </message>
    <message>
        <source>Send the edited message; the original and its replies stay as a branch</source>
        <translation>发送修改后的消息；原消息及其回复会作为一个分支保留</translation>
    </message>
    <message>
        <source>Previous version</source>
        <translation>上一个版本</translation>
    </message>
    <message>
        <source>Next version</source>
        <translation>下一个版本</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>复制</translation>
    </message>
    <message>
        <source>Copy the message text</source>
        <translation>复制消息文本</translation>
    </message>
    <message>
        <source>Edit</source>
        <translation>编辑</translation>
    </message>
    <message>
        <source>Edit this message and send it again</source>
        <translation>编辑此消息并重新发送</translation>
    </message>
    <message>
        <source>Regenerate</source>
        <translation>重新生成</translation>
    </message>
    <message>
        <source>Answer again; this reply is kept as a branch</source>
        <translation>重新回答；当前回复会作为一个分支保留</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>删除</translation>
    </message>
    <message>
        <source>Delete this message and everything after it</source>
        <translation>删除此消息及其后的所有内容</translation>
    </message>
    <message>
        <source>Version %1 of %2</source>
        <translation>第 %1 个版本，共 %2 个</translation>
    </message>
    <message numerus="yes">
        <source>%n token(s)</source>
        <translation>
            <numerusform>%n 个词元</numerusform>
        </translation>
    </message>
    <message>
        <source> · %1 tokens/s</source>
        <translation> · 每秒 %1 个词元</translation>
    </message>
    <message>
        <source>Showing %1 of %2 characters.</source>
        <translation>显示了 %2 个字符中的 %1 个。</translation>
    </message>
    <message>
        <source>Generating…</source>
        <translation>正在生成…</translation>
    </message>
    <message>
        <source>Stopped</source>
        <translation>已停止</translation>
    </message>
    <message>
        <source>Interrupted: the app closed while this reply was written</source>
        <translation>已中断：写入此回复时应用被关闭了</translation>
    </message>
    <message>
        <source>Error: %1</source>
        <translation>错误：%1</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>已复制</translation>
    </message>
</context>
<context>
    <name>ModelBar</name>
    <message>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>Device</source>
        <translation>设备</translation>
    </message>
    <message>
        <source>Auto</source>
        <translation>自动</translation>
    </message>
    <message>
        <source>Auto uses CUDA when it works, else the CPU</source>
        <translation>“自动”会在 CUDA 可用时使用 CUDA，否则使用 CPU</translation>
    </message>
    <message>
        <source>Loading the model</source>
        <translation>正在加载模型</translation>
    </message>
    <message>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <source>Chat and application settings (Ctrl+,)</source>
        <translation>对话和应用设置（Ctrl+,）</translation>
    </message>
    <message>
        <source>%1 (unusable)</source>
        <translation>%1（不可用）</translation>
    </message>
    <message>
        <source>No model installed</source>
        <translation>未安装模型</translation>
    </message>
    <message>
        <source>perplexity ×%1, top-1 agreement %2%</source>
        <translation>困惑度 ×%1，top-1 一致率 %2%</translation>
    </message>
    <message>
        <source>not validated</source>
        <translation>未经验证</translation>
    </message>
    <message>
        <source>failed validation</source>
        <translation>未通过验证</translation>
    </message>
    <message>
        <source>Loading %1…</source>
        <translation>正在加载 %1…</translation>
    </message>
</context>
<context>
    <name>ModelsDialog</name>
    <message>
        <source>Models</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>Installed models</source>
        <translation>已安装的模型</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>Family</source>
        <translation>系列</translation>
    </message>
    <message>
        <source>Parameters</source>
        <translation>参数量</translation>
    </message>
    <message>
        <source>Quantization</source>
        <translation>量化</translation>
    </message>
    <message>
        <source>Disk use</source>
        <translation>占用空间</translation>
    </message>
    <message>
        <source>Delete…</source>
        <translation>删除…</translation>
    </message>
    <message>
        <source>Delete the selected model</source>
        <translation>删除所选模型</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>关闭</translation>
    </message>
    <message>
        <source>%1 (in use)</source>
        <translation>%1（使用中）</translation>
    </message>
    <message>
        <source>%1 (unusable)</source>
        <translation>%1（不可用）</translation>
    </message>
    <message>
        <source>No model is installed.</source>
        <translation>尚未安装模型。</translation>
    </message>
    <message>
        <source>Deleted %1.</source>
        <translation>已删除 %1。</translation>
    </message>
    <message>
        <source>%1 is in use: choose another model first, then delete it.</source>
        <translation>%1 正在使用：请先选择其他模型，再删除它。</translation>
    </message>
    <message>
        <source>Deleting a model removes its folder from the disk; chats that used it are kept.</source>
        <translation>删除模型会从磁盘移除其文件夹；使用过它的对话会保留。</translation>
    </message>
    <message>
        <source>Delete a model</source>
        <translation>删除模型</translation>
    </message>
    <message>
        <source>Delete %1? This frees %2 on the disk.</source>
        <translation>删除 %1？将释放 %2 磁盘空间。</translation>
    </message>
    <message>
        <source>The folder %1 is removed. Chats that used the model are kept.</source>
        <translation>将移除文件夹 %1。使用过该模型的对话会保留。</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>删除</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
</context>
<context>
    <name>ServerStatus</name>
    <message>
        <source>%1 running, %2 waiting, %3 answered</source>
        <translation>%1 个进行中，%2 个等待中，已回答 %3 个</translation>
    </message>
    <message>
        <source>starting…</source>
        <translation>正在启动…</translation>
    </message>
    <message>
        <source>stopping…</source>
        <translation>正在停止…</translation>
    </message>
    <message>
        <source>Local server: %1</source>
        <translation>本地服务器：%1</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <source>This chat</source>
        <translation>当前对话</translation>
    </message>
    <message>
        <source>Application</source>
        <translation>应用</translation>
    </message>
    <message>
        <source>These settings are saved with this conversation. Defaults come from the model %1.</source>
        <translation>这些设置随此对话一起保存。默认值来自模型 %1。</translation>
    </message>
    <message>
        <source>These settings are saved with this conversation. Defaults come from the model.</source>
        <translation>这些设置随此对话一起保存。默认值来自模型。</translation>
    </message>
    <message>
        <source>System prompt</source>
        <translation>系统提示词</translation>
    </message>
    <message>
        <source>Optional instructions the model sees before the conversation</source>
        <translation>可选：模型在对话开始前看到的指示</translation>
    </message>
    <message>
        <source>Temperature</source>
        <translation>温度</translation>
    </message>
    <message>
        <source>Randomness: 0 always picks the most likely token</source>
        <translation>随机程度：为 0 时总是选择可能性最大的词元</translation>
    </message>
    <message>
        <source>Top-k</source>
        <translation>Top-k 采样</translation>
    </message>
    <message>
        <source>Sample only among the k most likely tokens; 0 turns this off</source>
        <translation>只在可能性最大的 k 个词元中采样；为 0 时不限制</translation>
    </message>
    <message>
        <source>Top-p</source>
        <translation>Top-p 采样</translation>
    </message>
    <message>
        <source>Sample among the most likely tokens that make up this share of probability</source>
        <translation>在累计概率达到此比例的最可能词元中采样</translation>
    </message>
    <message>
        <source>Min-p</source>
        <translation>Min-p 采样</translation>
    </message>
    <message>
        <source>Leave out tokens less likely than this share of the most likely one</source>
        <translation>排除概率低于最可能词元此比例的词元</translation>
    </message>
    <message>
        <source>Repetition penalty</source>
        <translation>重复惩罚</translation>
    </message>
    <message>
        <source>Above 1 makes recently used tokens less likely</source>
        <translation>大于 1 时，降低最近用过的词元再次出现的概率</translation>
    </message>
    <message>
        <source>Max new tokens</source>
        <translation>最大生成词元数</translation>
    </message>
    <message>
        <source>The longest reply, in tokens</source>
        <translation>回复的最大长度（以词元计）</translation>
    </message>
    <message>
        <source>Seed</source>
        <translation>随机种子</translation>
    </message>
    <message>
        <source>The same seed and settings give the same reply; empty means random</source>
        <translation>相同的种子和设置会得到相同的回复；留空表示随机</translation>
    </message>
    <message>
        <source>random</source>
        <translation>随机</translation>
    </message>
    <message>
        <source>Valid range: %1</source>
        <translation>有效范围：%1</translation>
    </message>
    <message>
        <source>Reset to defaults</source>
        <translation>恢复默认值</translation>
    </message>
    <message>
        <source>Use the model&apos;s default sampling settings</source>
        <translation>使用模型默认的采样设置</translation>
    </message>
    <message>
        <source>Language</source>
        <translation>语言</translation>
    </message>
    <message>
        <source>System default</source>
        <translation>跟随系统</translation>
    </message>
    <message>
        <source>Theme</source>
        <translation>主题</translation>
    </message>
    <message>
        <source>Follow the system</source>
        <translation>跟随系统</translation>
    </message>
    <message>
        <source>Light</source>
        <translation>浅色</translation>
    </message>
    <message>
        <source>Dark</source>
        <translation>深色</translation>
    </message>
    <message>
        <source>Memory for the conversation</source>
        <translation>对话占用的内存</translation>
    </message>
    <message>
        <source>Full precision (fp32)</source>
        <translation>全精度（fp32）</translation>
    </message>
    <message>
        <source>Compact (int8, on the CPU)</source>
        <translation>紧凑（int8，在 CPU 上）</translation>
    </message>
    <message>
        <source>The model&apos;s KV cache. Compact takes a quarter of the memory and answers about twice as fast in long conversations, at a small cost in accuracy; it runs on the CPU, for models exported with it.</source>
        <translation>模型的 KV 缓存。紧凑模式只占四分之一的内存，在长对话中回复速度约快一倍，精度略有损失；它在 CPU 上运行，仅适用于带有该图的导出模型。</translation>
    </message>
    <message>
        <source>Compact keeps a quarter of the memory and answers about twice as fast in long conversations, at a small cost in accuracy. It runs on the CPU; the model reloads when you change it.</source>
        <translation>紧凑模式只占四分之一的内存，在长对话中回复速度约快一倍，精度略有损失。它在 CPU 上运行；更改后模型会重新加载。</translation>
    </message>
    <message>
        <source>Enter a whole number</source>
        <translation>请输入整数</translation>
    </message>
    <message>
        <source>Enter a number</source>
        <translation>请输入数字</translation>
    </message>
    <message>
        <source>Out of range: valid values are %1</source>
        <translation>超出范围：有效值为 %1</translation>
    </message>
</context>
<context>
    <name>Sidebar</name>
    <message>
        <source>New chat</source>
        <translation>新建对话</translation>
    </message>
    <message>
        <source>Start a new conversation (Ctrl+N)</source>
        <translation>开始新的对话（Ctrl+N）</translation>
    </message>
    <message>
        <source>Search chats (Ctrl+F)</source>
        <translation>搜索对话（Ctrl+F）</translation>
    </message>
    <message>
        <source>Search chats</source>
        <translation>搜索对话</translation>
    </message>
    <message>
        <source>Conversations</source>
        <translation>对话列表</translation>
    </message>
    <message>
        <source>No chats yet</source>
        <translation>还没有对话</translation>
    </message>
    <message>
        <source>Nothing matches “%1”</source>
        <translation>没有与“%1”匹配的内容</translation>
    </message>
    <message>
        <source>Rename</source>
        <translation>重命名</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>删除</translation>
    </message>
</context>
<context>
    <name>StatusBar</name>
    <message>
        <source>Decoding speed of the last reply</source>
        <translation>上一条回复的解码速度</translation>
    </message>
    <message>
        <source>Time to the first token of the last reply</source>
        <translation>上一条回复生成首个词元所用的时间</translation>
    </message>
    <message>
        <source>Context used</source>
        <translation>已用上下文</translation>
    </message>
    <message>
        <source>Tokens of the conversation plus the space kept for the reply, out of the model&apos;s context</source>
        <translation>对话占用的词元数加上为回复预留的空间，相对于模型的上下文长度</translation>
    </message>
    <message>
        <source>Model: %1</source>
        <translation>模型：%1</translation>
    </message>
    <message>
        <source>No model loaded</source>
        <translation>未加载模型</translation>
    </message>
    <message>
        <source>Device: %1</source>
        <translation>设备：%1</translation>
    </message>
    <message>
        <source>%1 tokens/s</source>
        <translation>每秒 %1 个词元</translation>
    </message>
    <message>
        <source>— tokens/s</source>
        <translation>— 词元/秒</translation>
    </message>
    <message>
        <source>first token %1 ms</source>
        <translation>首个词元 %1 毫秒</translation>
    </message>
    <message>
        <source>first token —</source>
        <translation>首个词元 —</translation>
    </message>
    <message>
        <source>Context %1 / %2</source>
        <translation>上下文 %1 / %2</translation>
    </message>
    <message>
        <source>Context —</source>
        <translation>上下文 —</translation>
    </message>
</context>
<context>
    <name>WelcomePage</name>
    <message>
        <source>Welcome to OnnxChat</source>
        <translation>欢迎使用 OnnxChat</translation>
    </message>
    <message>
        <source>Chat with language models on your own computer, offline. No model is installed yet.</source>
        <translation>在你自己的电脑上离线与语言模型对话。目前还没有安装模型。</translation>
    </message>
    <message>
        <source>Prepare the default model</source>
        <translation>准备默认模型</translation>
    </message>
    <message>
        <source>SmolLM2-135M-Instruct ships with OnnxChat. Preparing it converts and checks it, which takes about a minute.</source>
        <translation>OnnxChat 自带 SmolLM2-135M-Instruct。准备过程会转换并检验该模型，大约需要一分钟。</translation>
    </message>
    <message>
        <source>Preparing a model needs the export step, which is not installed in this copy. Install it with:</source>
        <translation>准备模型需要导出组件，但此副本中未安装。请用以下命令安装：</translation>
    </message>
    <message>
        <source>Install command</source>
        <translation>安装命令</translation>
    </message>
</context>
</TS>
