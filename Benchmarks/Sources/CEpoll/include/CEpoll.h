// sys/epoll.h for echo-load: Swift's Glibc module does not export it.
#ifndef CEPOLL_H
#define CEPOLL_H
#ifdef __linux__
#include <sys/epoll.h>
#endif
#endif
