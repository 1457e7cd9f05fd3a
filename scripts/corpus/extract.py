#!/usr/bin/env python3
"""extract.py - plain text from the public-domain books that Debian packages ship,
without R or any other reader of their formats (plain python3, standard library).

  python3 scripts/corpus/extract.py austen ROOT OUT.txt
      Jane Austen's six novels from r-cran-janeaustenr:
      ROOT/usr/lib/R/site-library/janeaustenr/data/Rdata.{rdx,rdb}
  python3 scripts/corpus/extract.py web ROOT OUT.txt
      the World English Bible from sword-text-web:
      ROOT/usr/share/sword/modules/texts/ztext/engWEB2015eb/{ot,nt}.{bzs,bzv,bzz}

ROOT is / for installed packages, or a folder where the .deb files were unpacked
(dpkg-deb -x). scripts/corpus/build.sh runs both and checks the results' checksums.

The formats:
- R's lazy-load database. Rdata.rdx is a gzip-compressed R serialization of a list
  whose element "variables" maps each object's name to (offset, length) in Rdata.rdb;
  each Rdata.rdb entry is a 4-byte big-endian uncompressed size and a zlib stream of one
  R-serialized object. R's serialization (format "X": XDR, big-endian) is read here as
  far as these files need: pairlists, symbols, character, logical, integer, double and
  generic vectors, attributes, references, and ALTREP compact integer sequences.
  Each novel is a character vector with one element per line of the printed book;
  its text is the lines joined with line feeds (an empty line between paragraphs).
- SWORD's zText modules. X.bzs holds 12-byte little-endian records (offset, size,
  uncompressed size) of the zlib blocks in X.bzz; X.bzv holds 10-byte little-endian
  records (block number, offset in the block, size as 16 bits), one per entry of the
  versification (module and testament headings, book and chapter introductions,
  verses), in reading order. The entries are OSIS XML fragments: notes are dropped,
  <w> and other inline elements keep their text, titles and paragraph (type "x-p") and
  chapter milestones start a new paragraph. Paragraphs are written one per line, with
  an empty line between them. A note between two words leaves a space ("God<note>
  ...</note>created" is "God created").
"""
import gzip
import html
import re
import struct
import sys
import zlib

# ------------------------------------------------------------------ R serialization

NILVALUE, EMPTYENV, BASEENV, GLOBALENV, UNBOUND, MISSINGARG, BASENAMESPACE = \
    254, 242, 241, 253, 252, 251, 250
REFSXP, ALTREP = 255, 238


class RReader:
    """Reads one R object serialized in the XDR format."""

    def __init__(self, data):
        if data[:2] != b'X\n':
            raise ValueError('not an XDR R serialization (starts %r)' % data[:2])
        self.d, self.p, self.refs = data, 2, []
        version = self.int()
        self.int()                          # R version that wrote it
        self.int()                          # oldest R version that reads it
        if version == 3:
            n = self.int()
            self.p += n                     # native encoding name
        elif version != 2:
            raise ValueError('R serialization version %d' % version)

    def int(self):
        v = struct.unpack_from('>i', self.d, self.p)[0]
        self.p += 4
        return v

    def length(self):
        n = self.int()
        if n == -1:                         # a long vector: two more words
            hi, lo = self.int(), self.int()
            n = (hi << 32) + (lo & 0xffffffff)
        return n

    def item(self):
        flags = self.int()
        t = flags & 0xff
        has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if t in (NILVALUE, EMPTYENV, BASEENV, GLOBALENV, UNBOUND, MISSINGARG, BASENAMESPACE):
            return None
        if t == REFSXP:
            i = flags >> 8
            return self.refs[(i if i else self.int()) - 1]
        if t == 1:                          # SYMSXP
            sym = ('sym', self.item())
            self.refs.append(sym)
            return sym
        if t in (2, 6, 239, 240):           # LISTSXP, LANGSXP, ATTRLISTSXP, ATTRLANGSXP
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            node = [(tag[1] if tag else None, car)]
            if isinstance(cdr, dict) and cdr.get('pairlist'):
                node += cdr['items']
            return {'pairlist': True, 'items': node, 'attr': attr}
        if t == 9:                          # CHARSXP
            n = self.int()
            if n == -1:
                return None                 # NA_character_
            s = self.d[self.p:self.p + n]
            self.p += n
            return s.decode('utf-8') if (flags >> 12) & (1 << 3) or s.isascii() \
                else s.decode('latin-1') if (flags >> 12) & (1 << 2) else s.decode('utf-8')
        if t in (10, 13):                   # LGLSXP, INTSXP
            n = self.length()
            v = list(struct.unpack_from('>%di' % n, self.d, self.p))
            self.p += 4 * n
        elif t == 14:                       # REALSXP
            n = self.length()
            v = list(struct.unpack_from('>%dd' % n, self.d, self.p))
            self.p += 8 * n
        elif t == 16:                       # STRSXP
            v = [self.item() for _ in range(self.length())]
        elif t in (19, 20):                 # VECSXP, EXPRSXP
            v = [self.item() for _ in range(self.length())]
        elif t == 24:                       # RAWSXP
            n = self.length()
            v = self.d[self.p:self.p + n]
            self.p += n
        elif t == ALTREP:
            info, state, attr = self.item(), self.item(), self.item()
            cls = info['items'][0][1][1]
            if cls != 'compact_intseq':
                raise ValueError('ALTREP class %s is not supported' % cls)
            n, start, step = state
            return list(range(int(start), int(start) + int(n) * int(step), int(step)))
        else:
            raise ValueError('R type %d at byte %d is not supported' % (t, self.p - 4))
        if has_attr:
            attr = self.item()
            names = [c for tag, c in attr['items'] if tag == 'names']
            if names and t == 19:
                return dict(zip(names[0], v))
        return v


def austen(root, out):
    data = root + '/usr/lib/R/site-library/janeaustenr/data/Rdata'
    index = RReader(gzip.decompress(open(data + '.rdx', 'rb').read())).item()
    if index.get('compressed') not in ([True], [1]):
        raise ValueError('Rdata.rdx: compression %r, not zlib' % index.get('compressed'))
    rdb = open(data + '.rdb', 'rb').read()
    # the novels in the order of publication
    order = ['sensesensibility', 'prideprejudice', 'mansfieldpark', 'emma',
             'northangerabbey', 'persuasion']
    variables = index['variables']
    if sorted(variables) != sorted(order):
        raise ValueError('Rdata.rdx names %s, not the six novels' % sorted(variables))
    books = []
    for name in order:
        offset, length = variables[name]
        entry = rdb[offset:offset + length]
        size = struct.unpack('>I', entry[:4])[0]
        raw = zlib.decompress(entry[4:])
        if len(raw) != size:
            raise ValueError('%s: %d bytes, the entry says %d' % (name, len(raw), size))
        lines = RReader(raw).item()
        books.append('\n'.join(line or '' for line in lines).strip('\n') + '\n')
    with open(out, 'w', encoding='utf-8', newline='\n') as f:
        f.write('\n\n'.join(books))
    print('%s: %d novels' % (out, len(books)))


# ------------------------------------------------------------------ SWORD zText

BREAK = '\x00'   # a paragraph break while cleaning
NOTE = '\x01'    # where a note was: a space between two words, else nothing


def osis_to_text(xml):
    """The text of OSIS fragments, paragraphs separated by BREAK."""
    xml = re.sub(r'<note\b[^>]*/>', NOTE, xml)
    xml = re.sub(r'<note\b.*?</note>', NOTE, xml, flags=re.S)
    xml = re.sub(r'<div\b[^>]*\btype="x-p"[^>]*/>', BREAK, xml)
    xml = re.sub(r'<chapter\b[^>]*\bsID="[^"]*"[^>]*/>', BREAK, xml)
    xml = re.sub(r'<(?:title|lg|l|p)\b[^>]*>|</(?:title|lg|l|p)>', BREAK, xml)
    xml = re.sub(r'<[^>]*>', '', xml)
    xml = re.sub(r'(?<=\w)' + NOTE + r'+(?=\w)', ' ', xml).replace(NOTE, '')
    return html.unescape(xml)


def web(root, out):
    base = root + '/usr/share/sword/modules/texts/ztext/engWEB2015eb/'
    parts = []
    for testament in ('ot', 'nt'):
        bzs = open(base + testament + '.bzs', 'rb').read()
        bzv = open(base + testament + '.bzv', 'rb').read()
        bzz = open(base + testament + '.bzz', 'rb').read()
        if len(bzs) % 12 or len(bzv) % 10:
            raise ValueError('%s: index sizes %d and %d are not whole records'
                             % (testament, len(bzs), len(bzv)))
        blocks = {}
        last = None
        for k in range(len(bzv) // 10):
            block, offset, size = struct.unpack_from('<IIH', bzv, 10 * k)
            if size == 0 or (block, offset, size) == last:
                continue
            last = (block, offset, size)
            if block not in blocks:
                start, csize, usize = struct.unpack_from('<III', bzs, 12 * block)
                text = zlib.decompress(bzz[start:start + csize])
                if len(text) != usize:
                    raise ValueError('%s block %d: %d bytes, the index says %d'
                                     % (testament, block, len(text), usize))
                blocks[block] = text
            parts.append(blocks[block][offset:offset + size].decode('utf-8'))
    text = osis_to_text(' '.join(parts))
    paragraphs = [' '.join(p.split()) for p in text.split(BREAK)]
    paragraphs = [p for p in paragraphs if p]
    with open(out, 'w', encoding='utf-8', newline='\n') as f:
        f.write('\n\n'.join(paragraphs) + '\n')
    print('%s: %d paragraphs' % (out, len(paragraphs)))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ('austen', 'web'):
        sys.exit(__doc__)
    what, root, out = sys.argv[1:]
    (austen if what == 'austen' else web)(root.rstrip('/'), out)


if __name__ == '__main__':
    main()
