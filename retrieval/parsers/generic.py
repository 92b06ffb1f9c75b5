"""Any other document the city drops in: PDF, DOCX, HTML, Markdown or text, read by content, not name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from langchain_text_splitters import RecursiveCharacterTextSplitter

from retrieval.text import clean


class UnreadableDocument(Exception):
    """The file exists but yields no text we can index."""


def sniff_kind(data: bytes) -> str:
    head = data[:2048].lstrip()
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "word/document.xml" in z.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            pass
        return "binary"
    if b"\x00" in data[:4096]:
        return "binary"
    lowered = head.lower()
    if lowered.startswith(b"<!doctype html") or b"<html" in lowered or b"<body" in lowered:
        return "html"
    return "text"


def extract_text(data: bytes) -> tuple[str, str | None]:
    """Returns (text, title-if-the-format-has-one)."""
    kind = sniff_kind(data)
    if kind == "pdf":
        from pypdf import PdfReader

        try:
            reader = PdfReader(io.BytesIO(data))
            text = "\n\n".join((page.extract_text() or "") for page in reader.pages)
            title = (reader.metadata.title if reader.metadata else None) or None
        except Exception as exc:  # pypdf raises many types for damaged files
            raise UnreadableDocument(f"PDF could not be read: {exc}") from exc
        return text, title
    if kind == "docx":
        import docx

        try:
            document = docx.Document(io.BytesIO(data))
        except Exception as exc:
            raise UnreadableDocument(f"DOCX could not be read: {exc}") from exc
        title = document.core_properties.title or None
        return "\n\n".join(p.text for p in document.paragraphs), title
    if kind == "html":
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(data, "html.parser")
        for tag in soup(["script", "style", "nav", "footer"]):
            tag.decompose()
        title = soup.title.get_text(strip=True) if soup.title else None
        heading = soup.find(["h1", "h2"])
        return soup.get_text("\n"), title or (heading.get_text(strip=True) if heading else None)
    if kind == "binary":
        raise UnreadableDocument("not a PDF, DOCX, HTML, Markdown or text file")
    for encoding in ("utf-8", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    title = None
    for line in text.splitlines():
        if line.strip():
            title = line.strip().lstrip("#").strip()
            break
    return text, title


def split_text(text: str) -> list[str]:
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=900, chunk_overlap=120, separators=["\n\n", "\n", ". ", " ", ""]
    )
    return [clean(piece.replace("\n", " ")) for piece in splitter.split_text(text) if clean(piece)]


def read_generic(path: Path) -> tuple[str, str, list[str]]:
    """Returns (title, full text, pieces)."""
    data = path.read_bytes()
    if not data.strip():
        raise UnreadableDocument("empty file")
    text, title = extract_text(data)
    pieces = split_text(text)
    if not pieces:
        raise UnreadableDocument("no text could be extracted")
    return (clean(title or "") or path.stem.replace("-", " ").replace("_", " ")), text, pieces
