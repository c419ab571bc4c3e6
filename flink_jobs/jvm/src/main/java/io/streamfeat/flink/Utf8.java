package io.streamfeat.flink;

/** Strict UTF-8 (RFC 3629): no overlong form, no surrogate, nothing above U+10FFFF. */
final class Utf8 {
  private Utf8() {}

  /**
   * Null when {@code b} is well-formed UTF-8 that a JSON parser may read as UTF-8 (no byte
   * order mark, no NUL in the first four bytes, which would make a parser guess UTF-16 or
   * UTF-32), else what is wrong and where.
   */
  static String problem(byte[] b) {
    int n = b.length;
    if (n >= 3 && (b[0] & 0xFF) == 0xEF && (b[1] & 0xFF) == 0xBB && (b[2] & 0xFF) == 0xBF) {
      return "UTF-8 byte order mark (BOM) is not supported";
    }
    for (int i = 0; i < Math.min(n, 4); i++) {
      if (b[i] == 0) {
        return "NUL byte at " + i;
      }
    }
    int i = 0;
    while (i < n) {
      int c = b[i] & 0xFF;
      if (c < 0x80) {
        i++;
        continue;
      }
      int need;
      int min;
      if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        min = 0x80;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        min = 0x800;
      } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        min = 0x10000;
      } else {
        return "invalid UTF-8 byte 0x" + Integer.toHexString(c) + " at " + i;
      }
      if (i + need >= n) {
        return "truncated UTF-8 sequence at " + i;
      }
      int cp = c & (0x3F >> need);
      for (int k = 1; k <= need; k++) {
        int cc = b[i + k] & 0xFF;
        if ((cc & 0xC0) != 0x80) {
          return "invalid UTF-8 continuation at " + (i + k);
        }
        cp = (cp << 6) | (cc & 0x3F);
      }
      if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return "invalid UTF-8 sequence at " + i;
      }
      i += need + 1;
    }
    return null;
  }
}
