#!/bin/sh
# Add OnnxChat to this user's application menu, from the unpacked folder this script is in.
#
# Installs (and uninstall.sh removes exactly these):
#   ~/.local/bin/onnxchat                          a link to this folder's executable
#   ~/.local/share/applications/onnxchat.desktop   the menu entry
#   ~/.local/share/icons/hicolor/*/apps/onnxchat.* the icons (PNG 16..512 and SVG)
# The app stays in this folder: moving or deleting it breaks the entry (run this again).
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)
exe="$here/onnxchat"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
bin="$HOME/.local/bin"

if [ ! -x "$exe" ]; then
    echo "install.sh: $exe is missing; run this script from the unpacked OnnxChat folder" >&2
    exit 1
fi
case "$exe" in
    *[\"\`\$\\%]*)
        echo "install.sh: the folder path $here contains \" \` \$ \\ or %, which menu entries" \
             "cannot start; move the folder and run install.sh again" >&2
        exit 1 ;;
esac
if [ -e "$bin/onnxchat" ] && [ ! -L "$bin/onnxchat" ]; then
    echo "install.sh: $bin/onnxchat exists and is not a link (another OnnxChat install?);" \
         "remove it first, or start the app from this folder" >&2
    exit 1
fi

mkdir -p "$bin" "$data/applications"
ln -sfn "$exe" "$bin/onnxchat"

# The entry starts this folder's executable by its absolute path, so it works without PATH.
while IFS= read -r line; do
    case "$line" in
        Exec=*) printf 'Exec="%s"\n' "$exe" ;;
        TryExec=*) printf 'TryExec=%s\n' "$exe" ;;
        *) printf '%s\n' "$line" ;;
    esac
done < "$here/share/applications/onnxchat.desktop" > "$data/applications/onnxchat.desktop.tmp"
mv "$data/applications/onnxchat.desktop.tmp" "$data/applications/onnxchat.desktop"

for icon in "$here"/share/icons/hicolor/*/apps/onnxchat.*; do
    target="$data/icons/hicolor/${icon#"$here"/share/icons/hicolor/}"
    mkdir -p "$(dirname -- "$target")"
    cp "$icon" "$target"
done

echo "OnnxChat is in the application menu; the command is $bin/onnxchat"
case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "(add $bin to PATH to type onnxchat in a terminal)" ;;
esac
