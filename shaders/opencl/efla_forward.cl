/* The efla OpenCL program: every kernel of one storage dtype and tile class. */
#include "efla_common.cl"
#include "efla_recurrent.cl"
#include "efla_chunk_prepare.cl"
#include "efla_chunk_scan.cl"
