{
	"patcher": {
		"fileversion": 1,
		"appversion": {
			"major": 8,
			"minor": 6,
			"revision": 0,
			"architecture": "x64",
			"modernui": 1
		},
		"classnamespace": "box",
		"rect": [
			100.0,
			100.0,
			1400.0,
			760.0
		],
		"openrect": [
			0.0,
			0.0,
			420.0,
			169.0
		],
		"bglocked": 0,
		"openinpresentation": 1,
		"default_fontsize": 10.0,
		"default_fontface": 0,
		"default_fontname": "Arial Bold",
		"gridonopen": 1,
		"gridsize": [
			8.0,
			8.0
		],
		"gridsnaponopen": 1,
		"objectsnaponopen": 1,
		"statusbarvisible": 2,
		"toolbarvisible": 1,
		"boxanimatetime": 200,
		"enablehscroll": 1,
		"enablevscroll": 1,
		"devicewidth": 420.0,
		"description": "audiohost: foley and restyle from the audiohost render daemon, taken straight into a clip slot",
		"digest": "",
		"tags": "audiohost",
		"style": "",
		"boxes": [
			{
				"box": {
					"id": "obj-plugin",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": [
						"signal",
						"signal"
					],
					"patching_rect": [
						20.0,
						20.0,
						60.0,
						22.0
					],
					"text": "plugin~"
				}
			},
			{
				"box": {
					"id": "obj-plugout",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": [
						"signal",
						"signal"
					],
					"patching_rect": [
						20.0,
						420.0,
						60.0,
						22.0
					],
					"text": "plugout~"
				}
			},
			{
				"box": {
					"id": "obj-thisdevice",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": [
						"bang",
						"int",
						"int"
					],
					"patching_rect": [
						120.0,
						20.0,
						90.0,
						22.0
					],
					"text": "live.thisdevice"
				}
			},
			{
				"box": {
					"id": "obj-msg-init",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						120.0,
						50.0,
						40.0,
						22.0
					],
					"text": "init"
				}
			},
			{
				"box": {
					"id": "obj-js",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 7,
					"outlettype": [
						"",
						"",
						"",
						"",
						"",
						"",
						""
					],
					"patching_rect": [
						400.0,
						300.0,
						300.0,
						22.0
					],
					"text": "js audiohost_device.js"
				}
			},
			{
				"box": {
					"id": "obj-udpsend",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [
						400.0,
						380.0,
						150.0,
						22.0
					],
					"text": "udpsend 127.0.0.1 9010"
				}
			},
			{
				"box": {
					"id": "obj-udpreceive",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						400.0,
						20.0,
						100.0,
						22.0
					],
					"text": "udpreceive 0"
				}
			},
			{
				"box": {
					"id": "obj-deferlow",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						400.0,
						50.0,
						60.0,
						22.0
					],
					"text": "deferlow"
				}
			},
			{
				"box": {
					"id": "obj-route",
					"maxclass": "newobj",
					"numinlets": 13,
					"numoutlets": 13,
					"outlettype": [
						"",
						"",
						"",
						"",
						"",
						"",
						"",
						"",
						"",
						"",
						"",
						"",
						""
					],
					"patching_rect": [
						400.0,
						80.0,
						900.0,
						22.0
					],
					"text": "route /audiohost/replyport /audiohost/pong /audiohost/job/queued /audiohost/job/progress /audiohost/job/done /audiohost/job/failed /audiohost/job/cancelled /audiohost/cancelling /audiohost/error /audiohost/presets /audiohost/projects /audiohost/serving"
				}
			},
			{
				"box": {
					"id": "obj-prepend-replyport",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						400.0,
						120.0,
						110.0,
						22.0
					],
					"text": "prepend replyport"
				}
			},
			{
				"box": {
					"id": "obj-prepend-pong",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						475.0,
						150.0,
						110.0,
						22.0
					],
					"text": "prepend pong"
				}
			},
			{
				"box": {
					"id": "obj-prepend-queued",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						550.0,
						120.0,
						110.0,
						22.0
					],
					"text": "prepend queued"
				}
			},
			{
				"box": {
					"id": "obj-prepend-progress",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						625.0,
						150.0,
						110.0,
						22.0
					],
					"text": "prepend progress"
				}
			},
			{
				"box": {
					"id": "obj-prepend-done",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						700.0,
						120.0,
						110.0,
						22.0
					],
					"text": "prepend done"
				}
			},
			{
				"box": {
					"id": "obj-prepend-failed",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						775.0,
						150.0,
						110.0,
						22.0
					],
					"text": "prepend failed"
				}
			},
			{
				"box": {
					"id": "obj-prepend-cancelled",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						850.0,
						120.0,
						110.0,
						22.0
					],
					"text": "prepend cancelled"
				}
			},
			{
				"box": {
					"id": "obj-prepend-cancelling",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						925.0,
						150.0,
						110.0,
						22.0
					],
					"text": "prepend cancelling"
				}
			},
			{
				"box": {
					"id": "obj-prepend-daemonerror",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						1000.0,
						120.0,
						110.0,
						22.0
					],
					"text": "prepend daemonerror"
				}
			},
			{
				"box": {
					"id": "obj-prepend-presets",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						1075.0,
						150.0,
						110.0,
						22.0
					],
					"text": "prepend presets"
				}
			},
			{
				"box": {
					"id": "obj-prepend-projects",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						1150.0,
						120.0,
						110.0,
						22.0
					],
					"text": "prepend projects"
				}
			},
			{
				"box": {
					"id": "obj-prepend-serving",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						1225.0,
						150.0,
						110.0,
						22.0
					],
					"text": "prepend serving"
				}
			},
			{
				"box": {
					"id": "obj-label-mode",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [
						20.0,
						480.0,
						40.0,
						18.0
					],
					"text": "mode",
					"presentation": 1,
					"presentation_rect": [
						8.0,
						6.0,
						40.0,
						18.0
					]
				}
			},
			{
				"box": {
					"id": "obj-mode",
					"maxclass": "live.tab",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": [
						"",
						"",
						"float"
					],
					"patching_rect": [
						20.0,
						500.0,
						100.0,
						20.0
					],
					"presentation": 1,
					"presentation_rect": [
						50.0,
						6.0,
						110.0,
						18.0
					],
					"parameter_enable": 1,
					"num_lines_patching": 1,
					"num_lines_presentation": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "audiohost mode",
							"parameter_shortname": "Mode",
							"parameter_type": 2,
							"parameter_enum": [
								"foley",
								"restyle"
							],
							"parameter_mmax": 1,
							"parameter_initial_enable": 1,
							"parameter_initial": [
								0
							]
						}
					},
					"varname": "mode"
				}
			},
			{
				"box": {
					"id": "obj-prepend-mode",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						20.0,
						530.0,
						90.0,
						22.0
					],
					"text": "prepend mode"
				}
			},
			{
				"box": {
					"id": "obj-label-project",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [
						140.0,
						480.0,
						50.0,
						18.0
					],
					"text": "project",
					"presentation": 1,
					"presentation_rect": [
						170.0,
						6.0,
						50.0,
						18.0
					]
				}
			},
			{
				"box": {
					"id": "obj-project",
					"maxclass": "umenu",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": [
						"int",
						"",
						""
					],
					"patching_rect": [
						140.0,
						500.0,
						150.0,
						22.0
					],
					"presentation": 1,
					"presentation_rect": [
						222.0,
						6.0,
						190.0,
						20.0
					],
					"parameter_enable": 0,
					"varname": "project"
				}
			},
			{
				"box": {
					"id": "obj-prepend-project",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						140.0,
						530.0,
						100.0,
						22.0
					],
					"text": "prepend project"
				}
			},
			{
				"box": {
					"id": "obj-label-prompt",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [
						320.0,
						480.0,
						50.0,
						18.0
					],
					"text": "prompt",
					"presentation": 1,
					"presentation_rect": [
						8.0,
						30.0,
						50.0,
						18.0
					]
				}
			},
			{
				"box": {
					"id": "obj-prompt",
					"maxclass": "textedit",
					"numinlets": 1,
					"numoutlets": 4,
					"outlettype": [
						"",
						"int",
						"",
						""
					],
					"patching_rect": [
						320.0,
						500.0,
						200.0,
						40.0
					],
					"presentation": 1,
					"presentation_rect": [
						60.0,
						30.0,
						352.0,
						34.0
					],
					"parameter_enable": 0,
					"keymode": 1,
					"lines": 2,
					"varname": "prompt"
				}
			},
			{
				"box": {
					"id": "obj-prepend-prompt",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						320.0,
						550.0,
						100.0,
						22.0
					],
					"text": "prepend prompt"
				}
			},
			{
				"box": {
					"id": "obj-label-preset",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [
						540.0,
						480.0,
						50.0,
						18.0
					],
					"text": "preset",
					"presentation": 1,
					"presentation_rect": [
						8.0,
						68.0,
						50.0,
						18.0
					]
				}
			},
			{
				"box": {
					"id": "obj-preset",
					"maxclass": "umenu",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": [
						"int",
						"",
						""
					],
					"patching_rect": [
						540.0,
						500.0,
						150.0,
						22.0
					],
					"presentation": 1,
					"presentation_rect": [
						60.0,
						68.0,
						180.0,
						20.0
					],
					"parameter_enable": 0,
					"varname": "preset"
				}
			},
			{
				"box": {
					"id": "obj-prepend-preset",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						540.0,
						530.0,
						100.0,
						22.0
					],
					"text": "prepend preset"
				}
			},
			{
				"box": {
					"id": "obj-duration",
					"maxclass": "live.numbox",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [
						"",
						"float"
					],
					"patching_rect": [
						700.0,
						500.0,
						50.0,
						15.0
					],
					"presentation": 1,
					"presentation_rect": [
						248.0,
						68.0,
						50.0,
						17.0
					],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "audiohost duration",
							"parameter_shortname": "Duration",
							"parameter_type": 0,
							"parameter_mmin": 0.5,
							"parameter_mmax": 30.0,
							"parameter_unitstyle": 2,
							"parameter_initial_enable": 1,
							"parameter_initial": [
								4.0
							]
						}
					},
					"varname": "duration"
				}
			},
			{
				"box": {
					"id": "obj-prepend-duration",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						700.0,
						530.0,
						110.0,
						22.0
					],
					"text": "prepend duration"
				}
			},
			{
				"box": {
					"id": "obj-takes",
					"maxclass": "live.numbox",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [
						"",
						"float"
					],
					"patching_rect": [
						820.0,
						500.0,
						40.0,
						15.0
					],
					"presentation": 1,
					"presentation_rect": [
						304.0,
						68.0,
						40.0,
						17.0
					],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "audiohost takes",
							"parameter_shortname": "Takes",
							"parameter_type": 1,
							"parameter_mmin": 1,
							"parameter_mmax": 8,
							"parameter_unitstyle": 0,
							"parameter_initial_enable": 1,
							"parameter_initial": [
								2
							]
						}
					},
					"varname": "takes"
				}
			},
			{
				"box": {
					"id": "obj-prepend-takes",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						820.0,
						530.0,
						90.0,
						22.0
					],
					"text": "prepend takes"
				}
			},
			{
				"box": {
					"id": "obj-strength",
					"maxclass": "live.dial",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [
						"",
						"float"
					],
					"patching_rect": [
						920.0,
						500.0,
						44.0,
						48.0
					],
					"presentation": 1,
					"presentation_rect": [
						350.0,
						62.0,
						60.0,
						44.0
					],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "audiohost strength",
							"parameter_shortname": "Strength",
							"parameter_type": 0,
							"parameter_mmin": 0.0,
							"parameter_mmax": 1.0,
							"parameter_unitstyle": 1,
							"parameter_initial_enable": 1,
							"parameter_initial": [
								0.5
							]
						}
					},
					"varname": "strength"
				}
			},
			{
				"box": {
					"id": "obj-prepend-strength",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						920.0,
						560.0,
						110.0,
						22.0
					],
					"text": "prepend strength"
				}
			},
			{
				"box": {
					"id": "obj-render",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [
						"",
						""
					],
					"patching_rect": [
						20.0,
						600.0,
						60.0,
						20.0
					],
					"presentation": 1,
					"presentation_rect": [
						8.0,
						94.0,
						70.0,
						20.0
					],
					"parameter_enable": 1,
					"mode": 0,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "audiohost render",
							"parameter_shortname": "Render",
							"parameter_type": 2,
							"parameter_enum": [
								"val1",
								"val2"
							],
							"parameter_mmax": 1
						}
					},
					"varname": "render",
					"text": "Render"
				}
			},
			{
				"box": {
					"id": "obj-trigger",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [
						"bang",
						"bang"
					],
					"patching_rect": [
						20.0,
						630.0,
						40.0,
						22.0
					],
					"text": "t b b"
				}
			},
			{
				"box": {
					"id": "obj-msg-render",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						20.0,
						660.0,
						50.0,
						22.0
					],
					"text": "render"
				}
			},
			{
				"box": {
					"id": "obj-cancel",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [
						"",
						""
					],
					"patching_rect": [
						100.0,
						600.0,
						60.0,
						20.0
					],
					"presentation": 1,
					"presentation_rect": [
						84.0,
						94.0,
						60.0,
						20.0
					],
					"parameter_enable": 1,
					"mode": 0,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "audiohost cancel",
							"parameter_shortname": "Cancel",
							"parameter_type": 2,
							"parameter_enum": [
								"val1",
								"val2"
							],
							"parameter_mmax": 1
						}
					},
					"varname": "cancel",
					"text": "Cancel"
				}
			},
			{
				"box": {
					"id": "obj-msg-cancel",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						100.0,
						630.0,
						50.0,
						22.0
					],
					"text": "cancel"
				}
			},
			{
				"box": {
					"id": "obj-refresh",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": [
						"",
						""
					],
					"patching_rect": [
						180.0,
						600.0,
						60.0,
						20.0
					],
					"presentation": 1,
					"presentation_rect": [
						150.0,
						94.0,
						60.0,
						20.0
					],
					"parameter_enable": 1,
					"mode": 0,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_longname": "audiohost refresh",
							"parameter_shortname": "Refresh",
							"parameter_type": 2,
							"parameter_enum": [
								"val1",
								"val2"
							],
							"parameter_mmax": 1
						}
					},
					"varname": "refresh",
					"text": "Refresh"
				}
			},
			{
				"box": {
					"id": "obj-msg-refresh",
					"maxclass": "message",
					"numinlets": 2,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						180.0,
						630.0,
						40.0,
						22.0
					],
					"text": "init"
				}
			},
			{
				"box": {
					"id": "obj-progress",
					"maxclass": "slider",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [
						""
					],
					"patching_rect": [
						300.0,
						600.0,
						200.0,
						16.0
					],
					"presentation": 1,
					"presentation_rect": [
						216.0,
						96.0,
						128.0,
						16.0
					],
					"parameter_enable": 0,
					"orientation": 1,
					"size": 1.0,
					"floatoutput": 1,
					"ignoreclick": 1,
					"varname": "progress"
				}
			},
			{
				"box": {
					"id": "obj-status",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [
						300.0,
						630.0,
						300.0,
						18.0
					],
					"text": "starting...",
					"presentation": 1,
					"presentation_rect": [
						8.0,
						118.0,
						404.0,
						18.0
					],
					"varname": "status"
				}
			},
			{
				"box": {
					"id": "obj-paths",
					"maxclass": "textedit",
					"numinlets": 1,
					"numoutlets": 4,
					"outlettype": [
						"",
						"int",
						"",
						""
					],
					"patching_rect": [
						300.0,
						660.0,
						400.0,
						40.0
					],
					"presentation": 1,
					"presentation_rect": [
						8.0,
						138.0,
						404.0,
						28.0
					],
					"parameter_enable": 0,
					"readonly": 1,
					"lines": 2,
					"varname": "paths"
				}
			}
		],
		"lines": [
			{
				"patchline": {
					"destination": [
						"obj-plugout",
						0
					],
					"source": [
						"obj-plugin",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-plugout",
						1
					],
					"source": [
						"obj-plugin",
						1
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-msg-init",
						0
					],
					"source": [
						"obj-thisdevice",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-msg-init",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-udpsend",
						0
					],
					"source": [
						"obj-js",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-udpreceive",
						0
					],
					"source": [
						"obj-js",
						1
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-deferlow",
						0
					],
					"source": [
						"obj-udpreceive",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-route",
						0
					],
					"source": [
						"obj-deferlow",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-replyport",
						0
					],
					"source": [
						"obj-route",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-replyport",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-pong",
						0
					],
					"source": [
						"obj-route",
						1
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-pong",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-queued",
						0
					],
					"source": [
						"obj-route",
						2
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-queued",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-progress",
						0
					],
					"source": [
						"obj-route",
						3
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-progress",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-done",
						0
					],
					"source": [
						"obj-route",
						4
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-done",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-failed",
						0
					],
					"source": [
						"obj-route",
						5
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-failed",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-cancelled",
						0
					],
					"source": [
						"obj-route",
						6
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-cancelled",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-cancelling",
						0
					],
					"source": [
						"obj-route",
						7
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-cancelling",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-daemonerror",
						0
					],
					"source": [
						"obj-route",
						8
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-daemonerror",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-presets",
						0
					],
					"source": [
						"obj-route",
						9
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-presets",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-projects",
						0
					],
					"source": [
						"obj-route",
						10
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-projects",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-serving",
						0
					],
					"source": [
						"obj-route",
						11
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-serving",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-mode",
						0
					],
					"source": [
						"obj-mode",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-mode",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-project",
						0
					],
					"source": [
						"obj-project",
						1
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-project",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-project",
						0
					],
					"source": [
						"obj-js",
						3
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-prompt",
						0
					],
					"source": [
						"obj-prompt",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-prompt",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-preset",
						0
					],
					"source": [
						"obj-preset",
						1
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-preset",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-preset",
						0
					],
					"source": [
						"obj-js",
						2
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-duration",
						0
					],
					"source": [
						"obj-duration",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-duration",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-takes",
						0
					],
					"source": [
						"obj-takes",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-takes",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prepend-strength",
						0
					],
					"source": [
						"obj-strength",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-prepend-strength",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-trigger",
						0
					],
					"source": [
						"obj-render",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-prompt",
						0
					],
					"source": [
						"obj-trigger",
						1
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-msg-render",
						0
					],
					"source": [
						"obj-trigger",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-msg-render",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-msg-cancel",
						0
					],
					"source": [
						"obj-cancel",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-msg-cancel",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-msg-refresh",
						0
					],
					"source": [
						"obj-refresh",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-js",
						0
					],
					"source": [
						"obj-msg-refresh",
						0
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-progress",
						0
					],
					"source": [
						"obj-js",
						4
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-status",
						0
					],
					"source": [
						"obj-js",
						5
					]
				}
			},
			{
				"patchline": {
					"destination": [
						"obj-paths",
						0
					],
					"source": [
						"obj-js",
						6
					]
				}
			}
		],
		"dependency_cache": [
			{
				"name": "audiohost_device.js",
				"type": "TEXT",
				"implicit": 1
			}
		],
		"autosave": 0
	}
}
