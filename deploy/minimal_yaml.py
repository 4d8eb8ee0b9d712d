"""Reads the small subset of YAML that deploy/kubernetes/ is written in.

Standard library only (no PyYAML on a bare Debian 12), for
deploy_files_check.py. Supported: several documents separated by `---`;
block mappings (`key: value`, `key:` with a nested block); block sequences
(`- value`, `- key: value` starting a mapping); a sequence at the same
indentation as its parent key; plain, 'single' and "double" quoted scalars;
`|` literal block scalars; `#` comments. Not supported, and refused with the
line number rather than misread: flow collections (`[a]`, `{a: b}`),
anchors and aliases, tags, `>` folded scalars, multi-line plain scalars.

Every scalar stays a string ("true", "30", "0440"): the checks compare text.
"""
import re


class YamlError(ValueError):
    pass


_KEY = re.compile(r"^([A-Za-z0-9_./-]+):(?:\s+(.*))?$")


def _strip_comment(text):
    """Removes a trailing `# comment` outside quotes."""
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _scalar(text, where):
    text = text.strip()
    if not text:
        return ""
    if text[0] in "[{&*!>":
        raise YamlError(f"{where}: unsupported YAML construct: {text!r}")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text[0] in "'\"":
        raise YamlError(f"{where}: unterminated quoted scalar: {text!r}")
    return text


class _Parser:
    def __init__(self, text, name):
        self.name = name
        # (line number, indentation, content without comment); blank and
        # comment-only lines are kept as None content for block scalars.
        self.raw = text.split("\n")
        self.i = 0

    def where(self, i):
        return f"{self.name}:{i + 1}"

    def _next_content(self, i):
        """Index of the next line with content at or after i, or len."""
        while i < len(self.raw):
            stripped = _strip_comment(self.raw[i])
            if stripped.strip():
                return i
            i += 1
        return i

    @staticmethod
    def _indent(line):
        return len(line) - len(line.lstrip(" "))

    def parse_block(self, indent):
        """Parses the block starting at self.i whose lines are indented by `indent`."""
        self.i = self._next_content(self.i)
        if self.i >= len(self.raw):
            return None
        line = _strip_comment(self.raw[self.i])
        if "\t" in line[: self._indent(line) + 1]:
            raise YamlError(f"{self.where(self.i)}: tab in indentation")
        content = line.strip()
        if content == "-" or content.startswith("- "):
            return self._sequence(indent)
        return self._mapping(indent)

    def _sequence(self, indent):
        items = []
        while True:
            self.i = self._next_content(self.i)
            if self.i >= len(self.raw):
                return items
            line = _strip_comment(self.raw[self.i])
            ind = self._indent(line)
            content = line.strip()
            if ind != indent or not (content == "-" or content.startswith("- ")):
                if ind > indent:
                    raise YamlError(f"{self.where(self.i)}: unexpected indentation")
                return items
            rest = content[1:].strip()
            if not rest:
                self.i += 1
                items.append(self.parse_block(self._child_indent(indent)))
            elif _KEY.match(rest):
                # "- key: value": a mapping whose keys line up with `key`.
                item_indent = ind + (len(content) - len(rest))
                self.raw[self.i] = " " * item_indent + self.raw[self.i].lstrip()[len(content) - len(rest):]
                items.append(self._mapping(item_indent))
            else:
                items.append(_scalar(rest, self.where(self.i)))
                self.i += 1

    def _child_indent(self, parent):
        j = self._next_content(self.i)
        if j >= len(self.raw):
            return parent + 1
        return self._indent(_strip_comment(self.raw[j]))

    def _mapping(self, indent):
        result = {}
        while True:
            self.i = self._next_content(self.i)
            if self.i >= len(self.raw):
                return result
            line = _strip_comment(self.raw[self.i])
            ind = self._indent(line)
            content = line.strip()
            if ind < indent:
                return result
            if ind > indent:
                raise YamlError(f"{self.where(self.i)}: unexpected indentation")
            if content == "-" or content.startswith("- "):
                return result  # a sequence at the parent's indentation ends here
            m = _KEY.match(content)
            if not m:
                raise YamlError(f"{self.where(self.i)}: expected `key: value`: {content!r}")
            key, rest = m.group(1), (m.group(2) or "").strip()
            if key in result:
                raise YamlError(f"{self.where(self.i)}: duplicate key {key!r}")
            line_no = self.i
            self.i += 1
            if rest in ("|", "|-"):
                result[key] = self._literal(indent, keep_final_newline=(rest == "|"))
            elif rest:
                result[key] = _scalar(rest, self.where(line_no))
            else:
                j = self._next_content(self.i)
                if j >= len(self.raw):
                    result[key] = None
                    continue
                child = _strip_comment(self.raw[j])
                child_indent = self._indent(child)
                child_is_seq = child.strip() == "-" or child.strip().startswith("- ")
                if child_indent > indent or (child_indent == indent and child_is_seq):
                    result[key] = self.parse_block(child_indent)
                else:
                    result[key] = None

    def _literal(self, indent, keep_final_newline):
        lines = []
        block_indent = None
        while self.i < len(self.raw):
            line = self.raw[self.i]
            if line.strip() == "":
                lines.append("")
                self.i += 1
                continue
            ind = self._indent(line)
            if ind <= indent:
                break
            if block_indent is None:
                block_indent = ind
            if ind < block_indent:
                break
            lines.append(line[block_indent:])
            self.i += 1
        while lines and lines[-1] == "":
            lines.pop()
        text = "\n".join(lines)
        return text + "\n" if keep_final_newline and text else text


def load_all(text, name="<yaml>"):
    """The documents of `text`, as dicts/lists/strings (None for an empty one)."""
    documents = []
    current = []
    for line in text.split("\n"):
        if line.rstrip() == "---":
            documents.append("\n".join(current))
            current = []
        else:
            current.append(line)
    documents.append("\n".join(current))
    result = []
    for doc in documents:
        parser = _Parser(doc, name)
        value = parser.parse_block(0)
        rest = parser._next_content(parser.i)
        if rest < len(parser.raw):
            raise YamlError(f"{parser.where(rest)}: unexpected content: "
                            f"{parser.raw[rest].strip()!r}")
        if value is not None:
            result.append(value)
    return result
