/* zlib (Debian zlib1g-dev), for the HdrHistogram V2 compressed encoding in storm reports. */
#include <zlib.h>
