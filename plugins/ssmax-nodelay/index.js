'use strict';
// TCP_NODELAY for Haraka on its own (the ssmax plugin sets it too): the compiled module.
module.exports = require('../../dist/gateway/nodelay.js');
