// Intentionally empty: the target only exports include/CEpoll.h.
#include "CEpoll.h"
