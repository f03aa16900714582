// cojob/cojob.hpp - the whole public API.
#pragma once

#include <cojob/async_generator.hpp>
#include <cojob/delayed.hpp>
#include <cojob/errors.hpp>
#include <cojob/generator.hpp>
#include <cojob/init.hpp>
#include <cojob/memmap.hpp>
#include <cojob/memory.hpp>
#include <cojob/options.hpp>
#include <cojob/outcome.hpp>
#include <cojob/parallel.hpp>
#include <cojob/persist.hpp>
#include <cojob/pool.hpp>
#include <cojob/retry.hpp>
#include <cojob/stream.hpp>
#include <cojob/task_event.hpp>
