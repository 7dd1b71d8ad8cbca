// zlib (Debian: zlib1g-dev): CRC32 for checkpoints, inflate for .npz members.
#include <zlib.h>
