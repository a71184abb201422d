/* Backend lookup and the AUTO choice of backend and device. */
#ifndef EFLA_CORE_REGISTRY_H
#define EFLA_CORE_REGISTRY_H

#include "core/backend.h"

/* Resolves AUTO/-1 into a concrete backend and device index, honouring
 * EFLA_BACKEND and EFLA_DEVICE. Loads only the runtimes it must. */
efla_status efla_select_device(efla_backend requested, int32_t requested_device,
                               efla_backend *out_backend, uint32_t *out_device);

#endif
