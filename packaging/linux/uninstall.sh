#!/bin/sh
# Remove what install.sh added: the ~/.local/bin/onnxchat link, the menu entry and the icons.
# Chats and settings (~/.local/share/OnnxChat) and this folder are left alone.
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)
data="${XDG_DATA_HOME:-$HOME/.local/share}"
bin="$HOME/.local/bin"

if [ -L "$bin/onnxchat" ]; then
    rm -f "$bin/onnxchat"
fi
rm -f "$data/applications/onnxchat.desktop"
for icon in "$here"/share/icons/hicolor/*/apps/onnxchat.*; do
    rm -f "$data/icons/hicolor/${icon#"$here"/share/icons/hicolor/}"
done

echo "OnnxChat is removed from the application menu; chats and settings in" \
     "$data/OnnxChat were kept (delete that folder to remove them), as was $here"
