/* The efla OpenCL program: every kernel of one storage dtype and tile class. */
#include "efla_common.cl"
#include "efla_recurrent.cl"
#ifdef EFLA_NVMMA /* NVIDIA sm_80+ only: inline PTX tensor-core products */
#include "efla_nvmma_common.cl"
#endif
#include "efla_chunk_prepare.cl"
#include "efla_chunk_output.cl"
#ifdef EFLA_NVMMA
#include "efla_nvmma_output.cl"
#include "efla_nvmma_prepare.cl"
#endif

/* The state scan, once per Dv tile width. */
#define EFLA_DVT 8
#include "efla_chunk_state.cl"
#undef EFLA_DVT
#define EFLA_DVT 16
#include "efla_chunk_state.cl"
#undef EFLA_DVT
#define EFLA_DVT 32
#include "efla_chunk_state.cl"
#undef EFLA_DVT
