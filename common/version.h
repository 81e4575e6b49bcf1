/* version.h -- the one version number of every minicdn program */
#ifndef MINICDN_VERSION_H
#define MINICDN_VERSION_H
#define MINICDN_VERSION "0.1.0"
#endif
