/* json-c (Debian libjson-c-dev), for the fixture reader and writer. */
#include <json-c/json.h>
#include <json-c/json_tokener.h>
