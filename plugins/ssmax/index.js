'use strict';
// The ssmax Haraka plugin: the compiled gateway (npm run build in the project).
// Haraka loads a plugin folder with a package.json through require(), in its
// main realm, and copies these exports onto the plugin object.
module.exports = require('../../dist/gateway/plugin.js');
